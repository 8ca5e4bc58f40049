// node-forge adapter: the only file in sdk/fit that touches a private key or
// imports node-forge. Everything else sees an RsaSigner and RsaPublicKey bytes.

import forge from 'node-forge';
import { FitError } from './errors';
import { SHA256_DIGEST_INFO_PREFIX } from './pkcs1';
import type { RsaPublicKey, RsaSigner } from './signer';

function bigIntegerToBytes(n: forge.jsbn.BigInteger): Uint8Array {
  let hex = n.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

export class ForgeRsaSigner implements RsaSigner {
  readonly #key: forge.pki.rsa.PrivateKey;

  private constructor(key: forge.pki.rsa.PrivateKey) {
    this.#key = key;
  }

  /** A fresh RSA key (e = 65537); node-forge uses Node's native generator when it can. */
  static generate(bits = 2048): ForgeRsaSigner {
    const { privateKey } = forge.pki.rsa.generateKeyPair({ bits, e: 0x10001 });
    return new ForgeRsaSigner(privateKey);
  }

  /** Loads an unencrypted PEM private key ("RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY"). */
  static fromPem(pem: string): ForgeRsaSigner {
    let key: forge.pki.rsa.PrivateKey | null;
    try {
      key = forge.pki.privateKeyFromPem(pem) as forge.pki.rsa.PrivateKey | null;
    } catch (cause) {
      throw new FitError('E_FIT_BAD_KEY', 'private key is not an unencrypted RSA PEM key — export it with `openssl rsa -in key.pem -out plain.pem`', { cause });
    }
    if (!key || !key.n || !key.d) {
      throw new FitError('E_FIT_BAD_KEY', 'PEM does not hold an RSA private key — pass an RSA key');
    }
    return new ForgeRsaSigner(key);
  }

  sign(sha256Digest: Uint8Array): Uint8Array {
    if (sha256Digest.length !== 32) {
      throw new FitError('E_FIT_BAD_INPUT', `digest is ${sha256Digest.length} bytes, expected a 32-byte SHA-256 digest`);
    }
    // Scheme 'NONE' makes forge apply PKCS#1 v1.5 type-1 padding to exactly the
    // DigestInfo we pass, i.e. RSASSA-PKCS1-v1_5 over a precomputed digest.
    const digestInfo = Buffer.concat([SHA256_DIGEST_INFO_PREFIX, sha256Digest]).toString('binary');
    const sig = this.#key.sign(digestInfo as unknown as forge.md.MessageDigest, 'NONE');
    const out = Uint8Array.from(Buffer.from(sig, 'binary'));
    const k = Math.ceil(this.#key.n.bitLength() / 8);
    if (out.length === k) return out;
    const padded = new Uint8Array(k);
    padded.set(out, k - out.length);
    return padded;
  }

  publicKey(): RsaPublicKey {
    return { modulus: bigIntegerToBytes(this.#key.n), exponent: bigIntegerToBytes(this.#key.e) };
  }

  /** PKCS#1 PEM of the private key, for tools such as mkimage that read key files. */
  privateKeyPem(): string {
    return forge.pki.privateKeyToPem(this.#key);
  }
}
