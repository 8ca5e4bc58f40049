// Reads a FIT and verifies it the way U-Boot's `bootm` does before it boots:
// first the configuration signature against every required key
// (fit_config_verify), then the hash of every image the configuration uses
// (fit_image_verify). Fails closed: anything unknown or missing throws a
// FitError (or an FdtError for a malformed tree); success returns the images.

import { FitError } from './errors';
import { decodeFdt, findNode, getProp, readString, readStringList, readU32, type FdtNode } from './fdt';
import {
  configImageRefs,
  configSignatureDigest,
  configSignedNodes,
  FIT_CONFS_PATH,
  FIT_HASH_NODE_PREFIX,
  FIT_IMAGES_PATH,
  FIT_SIG_NODE_PREFIX,
  unsignedPropertyNames,
} from './fit-sig';
import { FIT_COMPRESSIONS, type FitCompression } from './fit';
import { FIT_SIGN_ALGO, type UbootPublicKey } from './keydtb';
import { sha256, verifyPkcs1v15Sha256 } from './pkcs1';
import type { RsaPublicKey } from './signer';

export interface FitVerifyKey {
  keyName: string;
  publicKey: RsaPublicKey;
}

export interface VerifiedFitImage {
  /** Image node name under /images. */
  name: string;
  /** Configuration property that referenced it ("kernel", "fdt", "ramdisk", ...). */
  role: string;
  type?: string;
  arch?: string;
  os?: string;
  /** One of FIT_COMPRESSIONS; absent when the node has none (U-Boot reads that as "none"). */
  compression?: FitCompression;
  load?: bigint;
  entry?: bigint;
  data: Uint8Array;
  sha256: Uint8Array;
}

export interface VerifiedFit {
  configuration: string;
  /** The signature node that verified, per key name. */
  signatures: { keyName: string; node: string }[];
  signedNodes: string[];
  timestamp?: number;
  images: VerifiedFitImage[];
}

export interface VerifyFitOptions {
  /** Configuration to verify; defaults to /configurations default. */
  configuration?: string;
}

/** Keys with required = "conf" from readPublicKeysFromDtb(), as verify keys. */
export function requiredConfKeys(keys: readonly UbootPublicKey[]): FitVerifyKey[] {
  return keys.filter((k) => k.required === 'conf').map((k) => ({ keyName: k.keyName, publicKey: k.publicKey }));
}

function fail(code: ConstructorParameters<typeof FitError>[0], message: string): never {
  throw new FitError(code, message);
}

function optString(node: FdtNode, name: string): string | undefined {
  const v = getProp(node, name);
  return v ? readString(v, `${node.name} ${name}`) : undefined;
}

function optAddress(node: FdtNode, name: string): bigint | undefined {
  const v = getProp(node, name);
  if (!v) return undefined;
  if (v.length !== 4 && v.length !== 8) fail('E_FIT_NOT_A_FIT', `${node.name} ${name} is ${v.length} bytes, expected 4 or 8 — the FIT is corrupt`);
  let n = 0n;
  for (const b of v) n = (n << 8n) | BigInt(b);
  return n;
}

function checkNoUnitAddress(node: FdtNode, path: string): void {
  // libfdt matches "kernel" against "kernel@1"; U-Boot refuses '@' under signature checking.
  if (node.name.includes('@')) {
    fail('E_FIT_UNIT_ADDRESS', `node ${path} has a unit address ('@'), which signature checking forbids — rename it`);
  }
}

/** Step 2 of bootm: one signature-* subnode must verify with `key` (fit_config_verify_key). */
function verifyConfigWithKey(blob: Uint8Array, root: FdtNode, confName: string, conf: FdtNode, key: FitVerifyKey): { node: string; signedNodes: string[] } {
  const sigNodes = conf.children.filter((c) => c.name.startsWith(FIT_SIG_NODE_PREFIX));
  if (sigNodes.length === 0) fail('E_FIT_NO_SIGNATURE', `configuration ${confName} has no signature node — sign the FIT`);
  let lastError: FitError | undefined;
  for (const sig of sigNodes) {
    try {
      return { node: sig.name, signedNodes: checkConfigSignature(blob, root, confName, conf, sig, key) };
    } catch (e) {
      if (!(e instanceof FitError)) throw e;
      lastError = e;
    }
  }
  throw lastError!;
}

/** fit_config_check_sig(): the signed regions of one signature node, checked against one key. */
function checkConfigSignature(blob: Uint8Array, root: FdtNode, confName: string, conf: FdtNode, sig: FdtNode, key: FitVerifyKey): string[] {
  const where = `${FIT_CONFS_PATH}/${confName}/${sig.name}`;
  const algo = optString(sig, 'algo');
  if (algo !== FIT_SIGN_ALGO) fail('E_FIT_UNSUPPORTED_ALGO', `${where} uses algorithm ${algo ?? '(none)'}, only ${FIT_SIGN_ALGO} is supported — re-sign with an RSA-2048 key`);
  const padding = optString(sig, 'padding');
  if (padding !== undefined && padding !== 'pkcs-1.5') fail('E_FIT_UNSUPPORTED_ALGO', `${where} uses padding ${padding}, only pkcs-1.5 is supported — re-sign without padding`);
  const value = getProp(sig, 'value');
  if (!value) fail('E_FIT_NO_SIGNATURE', `${where} has no value — sign the FIT`);

  // Which nodes are covered comes from the configuration itself, as in U-Boot
  // with the CVE-2026-46728 fix; hashed-nodes must name the same set.
  const refs = configImageRefs(conf);
  const signedNodes = configSignedNodes(root, confName, refs);
  if (signedNodes.length <= 2) fail('E_FIT_MISSING_IMAGE', `configuration ${confName} references no existing image — fix the FIT`);
  const hashedNodesProp = getProp(sig, 'hashed-nodes');
  if (!hashedNodesProp) fail('E_FIT_HASHED_NODES_MISMATCH', `${where} has no hashed-nodes — re-sign the FIT with mkimage or signet`);
  const listed = new Set(readStringList(hashedNodesProp, `${where} hashed-nodes`));
  const computed = new Set(signedNodes);
  if (listed.size !== computed.size || [...computed].some((n) => !listed.has(n))) {
    fail('E_FIT_HASHED_NODES_MISMATCH', `${where} hashed-nodes names [${[...listed].join(', ')}] but the configuration covers [${[...computed].join(', ')}] — re-sign the FIT`);
  }

  const hashedStrings = getProp(sig, 'hashed-strings');
  if (!hashedStrings || hashedStrings.length !== 8 || readU32(hashedStrings.subarray(0, 4)) !== 0) {
    fail('E_FIT_BAD_HASHED_STRINGS', `${where} hashed-strings is missing or not <0 size> — re-sign the FIT`);
  }
  const stringsSize = readU32(hashedStrings.subarray(4, 8));
  const uncovered = unsignedPropertyNames(blob, signedNodes, stringsSize);
  if (uncovered.length > 0) {
    fail('E_FIT_BAD_HASHED_STRINGS', `${where} leaves the names of ${uncovered.join(', ')} unsigned — re-sign the FIT`);
  }

  const { digest } = configSignatureDigest(blob, signedNodes, stringsSize);
  if (!verifyPkcs1v15Sha256(key.publicKey, digest, value)) {
    fail('E_FIT_SIGNATURE_INVALID', `${where} is not a valid signature by key ${key.keyName} — the FIT was altered or signed with another key`);
  }
  return signedNodes;
}

/** fit_image_verify(): every hash-* subnode must match the image data. */
function verifyImage(image: FdtNode, role: string): VerifiedFitImage {
  const where = `${FIT_IMAGES_PATH}/${image.name}`;
  if (getProp(image, 'data-offset') || getProp(image, 'data-position') || getProp(image, 'data-size')) {
    fail('E_FIT_EXTERNAL_DATA', `${where} keeps its data outside the FIT — rebuild without mkimage -E`);
  }
  if (image.children.some((c) => c.name === 'cipher')) {
    fail('E_FIT_UNSUPPORTED_ALGO', `${where} is encrypted, which is not supported — rebuild it unencrypted`);
  }
  // A compression this verifier does not know is data it cannot vouch for unpacking: refuse it
  // (U-Boot would use bzip2, lz4, lzo, zstd too; Signet writes none, gzip and lzma).
  const compression = optString(image, 'compression');
  if (compression !== undefined && !(FIT_COMPRESSIONS as readonly string[]).includes(compression)) {
    fail('E_FIT_UNSUPPORTED_COMPRESSION', `${where} is compressed "${compression}", only ${FIT_COMPRESSIONS.join(', ')} are supported — rebuild the FIT with one of those`);
  }
  const data = getProp(image, 'data');
  if (!data) fail('E_FIT_MISSING_IMAGE', `${where} has no data — rebuild the FIT`);
  const digest = sha256([data]);
  const hashes = image.children.filter((c) => c.name.startsWith(FIT_HASH_NODE_PREFIX));
  if (hashes.length === 0) fail('E_FIT_NO_HASH', `${where} has no hash node — rebuild the FIT with hashes`);
  for (const h of hashes) {
    checkNoUnitAddress(h, `${where}/${h.name}`);
    const algo = optString(h, 'algo');
    if (algo !== 'sha256') fail('E_FIT_UNSUPPORTED_ALGO', `${where}/${h.name} uses hash ${algo ?? '(none)'}, only sha256 is supported — rebuild the FIT`);
    const value = getProp(h, 'value');
    if (!value || value.length !== digest.length || value.some((b, i) => b !== digest[i])) {
      fail('E_FIT_HASH_MISMATCH', `${where} data does not match its ${h.name} sha256 — the image was altered or corrupted`);
    }
  }
  const out: VerifiedFitImage = { name: image.name, role, data, sha256: digest };
  const set = <K extends keyof VerifiedFitImage>(k: K, v: VerifiedFitImage[K] | undefined): void => {
    if (v !== undefined) out[k] = v;
  };
  set('type', optString(image, 'type'));
  set('arch', optString(image, 'arch'));
  set('os', optString(image, 'os'));
  set('compression', compression as FitCompression | undefined);
  set('load', optAddress(image, 'load'));
  set('entry', optAddress(image, 'entry'));
  return out;
}

export function verifyFit(itb: Uint8Array, keys: readonly FitVerifyKey[], options: VerifyFitOptions = {}): VerifiedFit {
  // Step 1: a well-formed tree with /images and /configurations.
  const fdt = decodeFdt(itb);
  const root = fdt.root;
  const images = findNode(root, FIT_IMAGES_PATH);
  const confs = findNode(root, FIT_CONFS_PATH);
  if (!images || !confs) fail('E_FIT_NOT_A_FIT', 'device tree has no /images or /configurations node — pass a FIT (.itb)');

  const confName = options.configuration ?? (getProp(confs, 'default') ? readString(getProp(confs, 'default')!, 'default') : undefined);
  if (!confName) fail('E_FIT_NO_CONFIG', 'FIT has no default configuration — name one with options.configuration');
  const conf = confs.children.find((c) => c.name === confName);
  if (!conf) fail('E_FIT_NO_CONFIG', `FIT has no configuration ${confName} — pick one it has`);
  checkNoUnitAddress(conf, `${FIT_CONFS_PATH}/${confName}`);
  for (const c of conf.children) checkNoUnitAddress(c, `${FIT_CONFS_PATH}/${confName}/${c.name}`);
  for (const img of images.children) checkNoUnitAddress(img, `${FIT_IMAGES_PATH}/${img.name}`);

  // Step 2: every required key must have signed the configuration
  // (required-mode "all"). Unlike U-Boot, no keys at all is a failure.
  if (keys.length === 0) fail('E_FIT_NO_KEYS', 'no public key to verify the FIT against — pass the board key');
  const signatures: VerifiedFit['signatures'] = [];
  let signedNodes: string[] = [];
  for (const key of keys) {
    const r = verifyConfigWithKey(itb, root, confName, conf, key);
    signatures.push({ keyName: key.keyName, node: r.node });
    signedNodes = r.signedNodes;
  }

  // Step 3: each referenced image must exist and match its hashes.
  const verified: VerifiedFitImage[] = [];
  for (const ref of configImageRefs(conf)) {
    const image = images.children.find((c) => c.name === ref.image);
    if (!image) fail('E_FIT_MISSING_IMAGE', `configuration ${confName} references image ${ref.image}, which the FIT does not have — rebuild the FIT`);
    verified.push(verifyImage(image, ref.property));
  }

  const ts = getProp(root, 'timestamp');
  return {
    configuration: confName,
    signatures,
    signedNodes,
    ...(ts ? { timestamp: readU32(ts, 'timestamp') } : {}),
    images: verified,
  };
}
