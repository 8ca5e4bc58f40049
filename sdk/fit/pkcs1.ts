// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 8.2.2 / 9.2), verification only, on
// BigInt — the same check U-Boot's rsa_verify() makes, without node-forge. Also
// derives the Montgomery parameters U-Boot stores next to each public key.

import { createHash } from 'node:crypto';
import type { RsaPublicKey } from './signer';

/** DER DigestInfo prefix for SHA-256 (RFC 8017 9.2 note 1). */
export const SHA256_DIGEST_INFO_PREFIX = Uint8Array.from([
  0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
]);

export const RSA2048_BITS = 2048;

export function sha256(parts: readonly Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export function bytesToBigInt(bytes: Uint8Array): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

/** I2OSP: big-endian, left-padded with zeros to `length` bytes. */
export function bigIntToBytes(n: bigint, length: number): Uint8Array {
  if (n < 0n) throw new RangeError('negative integer');
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  if (n !== 0n) throw new RangeError(`integer does not fit in ${length} bytes`);
  return out;
}

export function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let result = 1n;
  base %= mod;
  while (exp > 0n) {
    if (exp & 1n) result = (result * base) % mod;
    base = (base * base) % mod;
    exp >>= 1n;
  }
  return result;
}

/** EMSA-PKCS1-v1_5 encoding of a SHA-256 digest into `k` bytes. */
export function emsaPkcs1v15Sha256(digest: Uint8Array, k: number): Uint8Array {
  const t = new Uint8Array(SHA256_DIGEST_INFO_PREFIX.length + digest.length);
  t.set(SHA256_DIGEST_INFO_PREFIX, 0);
  t.set(digest, SHA256_DIGEST_INFO_PREFIX.length);
  const em = new Uint8Array(k).fill(0xff);
  em[0] = 0x00;
  em[1] = 0x01;
  em[k - t.length - 1] = 0x00;
  em.set(t, k - t.length);
  return em;
}

/** True when `signature` is a valid PKCS#1 v1.5 SHA-256 signature of `digest`. */
export function verifyPkcs1v15Sha256(key: RsaPublicKey, digest: Uint8Array, signature: Uint8Array): boolean {
  const n = bytesToBigInt(key.modulus);
  const e = bytesToBigInt(key.exponent);
  const k = Math.ceil(bitLength(n) / 8);
  if (digest.length !== 32 || signature.length !== k || n === 0n || e === 0n) return false;
  const s = bytesToBigInt(signature);
  if (s >= n) return false;
  const em = bigIntToBytes(modPow(s, e, n), k);
  const expected = emsaPkcs1v15Sha256(digest, k);
  let diff = 0;
  for (let i = 0; i < k; i++) diff |= em[i]! ^ expected[i]!;
  return diff === 0;
}

export interface UbootRsaParams {
  numBits: number;
  /** -1 / n mod 2^32 */
  n0Inverse: number;
  /** (2^numBits)^2 mod n, big-endian, numBits/8 bytes */
  rSquared: Uint8Array;
  /** n, big-endian, numBits/8 bytes */
  modulus: Uint8Array;
  exponent: bigint;
}

/** The values U-Boot's rsa_get_params() computes (lib/rsa/rsa-sign.c). */
export function ubootRsaParams(key: RsaPublicKey): UbootRsaParams {
  const n = bytesToBigInt(key.modulus);
  const numBits = bitLength(n);
  const two32 = 1n << 32n;
  // Newton iteration for n^-1 mod 2^32 (n is odd for any RSA modulus).
  let inv = n % two32;
  for (let i = 0; i < 5; i++) inv = (inv * (2n - ((n % two32) * inv) % two32 + two32)) % two32;
  const n0Inverse = Number((two32 - inv) % two32);
  const r = 1n << BigInt(numBits);
  const bytes = Math.floor(numBits / 32) * 4;
  return {
    numBits,
    n0Inverse,
    rSquared: bigIntToBytes((r * r) % n, bytes),
    modulus: bigIntToBytes(n, bytes),
    exponent: bytesToBigInt(key.exponent),
  };
}
