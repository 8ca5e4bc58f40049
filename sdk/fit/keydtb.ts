// The public-key device tree U-Boot checks FIT signatures against: a node
// /signature/key-<name> in U-Boot's control DTB, with the properties
// rsa_add_verify_data() (lib/rsa/rsa-sign.c) writes, in the order they end up
// in mkimage's output:
//
//   required       = "conf"
//   algo           = "sha256,rsa2048"
//   rsa,r-squared  = <(2^2048)^2 mod n, 64 big-endian u32 cells>
//   rsa,modulus    = <n, same form>
//   rsa,exponent   = /bits/ 64 <e>
//   rsa,n0-inverse = <-1/n mod 2^32>
//   rsa,num-bits   = <2048>
//   key-name-hint  = "<name>"

import { FdtError, FitError } from './errors';
import {
  decodeFdt,
  decodeFdtHeader,
  encodeFdt,
  ensureChild,
  fdtNode,
  fdtProp,
  getProp,
  newFdt,
  readString,
  readU32,
  readU64,
  stringProp,
  u32Prop,
  u64Prop,
  type DecodeOptions,
  type FdtNode,
} from './fdt';
import { bigIntToBytes, bytesToBigInt, RSA2048_BITS, ubootRsaParams } from './pkcs1';
import type { RsaPublicKey } from './signer';

export const FIT_SIGN_ALGO = 'sha256,rsa2048';
export const KEY_PARENT_NODE = 'signature';
export const KEY_NODE_PREFIX = 'key-';

/** Key names end up in node names and console lines; no '@' (unit addresses). */
const KEY_NAME = /^[A-Za-z0-9,._+-]{1,64}$/;

export type KeyRequirement = 'conf' | 'image';

export interface UbootPublicKey {
  keyName: string;
  algo: string;
  /** "conf": every configuration must carry a valid signature by this key. */
  required?: KeyRequirement;
  publicKey: RsaPublicKey;
}

export function checkKeyName(keyName: string): void {
  if (!KEY_NAME.test(keyName)) {
    throw new FitError('E_FIT_BAD_INPUT', `key name ${JSON.stringify(keyName)} is not allowed — use 1-64 letters, digits or ,._+-`);
  }
}

function checkRsa2048(key: RsaPublicKey): void {
  const n = bytesToBigInt(key.modulus);
  const bits = n === 0n ? 0 : n.toString(2).length;
  if (bits !== RSA2048_BITS || (n & 1n) === 0n) {
    throw new FitError('E_FIT_BAD_KEY', `public key modulus is ${bits} bits, expected an odd 2048-bit modulus — use an RSA-2048 key`);
  }
  const e = bytesToBigInt(key.exponent);
  if (e < 3n || (e & 1n) === 0n || e > 0xffffffffffffffffn) {
    throw new FitError('E_FIT_BAD_KEY', `public exponent ${e} is not usable — use an RSA key with e = 65537`);
  }
}

/** The /signature/key-<name> node for `key`. */
export function publicKeyNode(key: RsaPublicKey, keyName: string, required: KeyRequirement = 'conf'): FdtNode {
  checkKeyName(keyName);
  checkRsa2048(key);
  const p = ubootRsaParams(key);
  // rsa_add_verify_data() sets these in the reverse order; libfdt inserts each
  // new property first, so this is the order they have in mkimage's output.
  return fdtNode(`${KEY_NODE_PREFIX}${keyName}`, [
    stringProp('required', required),
    stringProp('algo', FIT_SIGN_ALGO),
    fdtProp('rsa,r-squared', p.rSquared),
    fdtProp('rsa,modulus', p.modulus),
    u64Prop('rsa,exponent', p.exponent),
    u32Prop('rsa,n0-inverse', p.n0Inverse),
    u32Prop('rsa,num-bits', p.numBits),
    stringProp('key-name-hint', keyName),
  ]);
}

/** A stand-alone DTB holding only / { signature { key-<name> { ... } } }. */
export function publicKeyDtb(key: RsaPublicKey, keyName: string): Uint8Array {
  return encodeFdt(newFdt(fdtNode('', [], [fdtNode(KEY_PARENT_NODE, [], [publicKeyNode(key, keyName)])])));
}

/**
 * Adds (or replaces) /signature/key-<name> in an existing DTB, e.g. the tree
 * QEMU generates for `-M virt`, keeping everything else and the original
 * total size when the result fits in it.
 */
export function mergePublicKeyIntoDtb(dtb: Uint8Array, key: RsaPublicKey, keyName: string, options: DecodeOptions = {}): Uint8Array {
  const fdt = decodeFdt(dtb, options);
  const parent = ensureChild(fdt.root, KEY_PARENT_NODE);
  const node = publicKeyNode(key, keyName);
  const at = parent.children.findIndex((c) => c.name === node.name);
  if (at >= 0) parent.children[at] = node;
  else parent.children.push(node);
  return encodeFdt(fdt, { minTotalSize: decodeFdtHeader(dtb).totalSize });
}

/**
 * Reads every /signature/key-* node. Fails closed on anything U-Boot would
 * trip over: unknown algo, missing or inconsistent Montgomery values.
 */
export function readPublicKeysFromDtb(dtb: Uint8Array, options: DecodeOptions = {}): UbootPublicKey[] {
  const fdt = decodeFdt(dtb, options);
  const parent = fdt.root.children.find((c) => c.name === KEY_PARENT_NODE);
  if (!parent) return [];
  return parent.children.map((node) => readKeyNode(node));
}

function readKeyNode(node: FdtNode): UbootPublicKey {
  const where = `/signature/${node.name}`;
  const need = (name: string): Uint8Array => {
    const v = getProp(node, name);
    if (!v) throw new FitError('E_FIT_BAD_KEY', `${where} has no ${name} property — regenerate the key device tree`);
    return v;
  };
  try {
    const keyName = getProp(node, 'key-name-hint') ? readString(need('key-name-hint')) : node.name.slice(KEY_NODE_PREFIX.length);
    const algo = readString(need('algo'), `${where} algo`);
    if (algo !== FIT_SIGN_ALGO) {
      throw new FitError('E_FIT_UNSUPPORTED_ALGO', `${where} uses algorithm ${algo}, only ${FIT_SIGN_ALGO} is supported — use an RSA-2048 key`);
    }
    const requiredRaw = getProp(node, 'required') ? readString(need('required'), `${where} required`) : undefined;
    if (requiredRaw !== undefined && requiredRaw !== 'conf' && requiredRaw !== 'image') {
      throw new FitError('E_FIT_BAD_KEY', `${where} has required = "${requiredRaw}", expected "conf" or "image" — fix the key device tree`);
    }
    const numBits = readU32(need('rsa,num-bits'), `${where} rsa,num-bits`);
    const modulus = need('rsa,modulus');
    const exponentProp = getProp(node, 'rsa,exponent');
    // U-Boot falls back to 65537 when rsa,exponent is absent.
    const exponent = exponentProp ? readU64(exponentProp, `${where} rsa,exponent`) : 65537n;
    const publicKey: RsaPublicKey = { modulus: stripLeadingZeros(modulus), exponent: bigIntToBytes(exponent, 8) };
    checkRsa2048(publicKey);
    const p = ubootRsaParams(publicKey);
    const rSquared = need('rsa,r-squared');
    if (
      numBits !== p.numBits ||
      modulus.length !== p.modulus.length ||
      readU32(need('rsa,n0-inverse'), `${where} rsa,n0-inverse`) !== p.n0Inverse ||
      !equalBytes(rSquared, p.rSquared)
    ) {
      throw new FitError('E_FIT_BAD_KEY', `${where} has rsa,num-bits/n0-inverse/r-squared that do not match its modulus — regenerate the key device tree`);
    }
    return { keyName, algo, ...(requiredRaw ? { required: requiredRaw } : {}), publicKey: { modulus: p.modulus, exponent: stripLeadingZeros(bigIntToBytes(exponent, 8)) } };
  } catch (cause) {
    if (cause instanceof FdtError) {
      throw new FitError('E_FIT_BAD_KEY', `${where} is malformed (${cause.message}) — regenerate the key device tree`, { cause });
    }
    throw cause;
  }
}

function stripLeadingZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.slice(i);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
