/**
 * The TUF metadata model (spec 1.0.x): roles, keys, canonical JSON signing and the checks a
 * client makes on root metadata. Pure and ES5-safe: the boot stage and the OTA agent run it
 * on the device; the CLI and the server run it on Node. Crypto comes in as an argument.
 */
import { fromHex, toHex, utf8Decode } from '../util/bytes';
import { canonicalBytes } from '../util/canonical-json';
import type { ImageCrypto } from '../image/crypto';
import { MetadataError } from './errors';

export const SPEC_VERSION = '1.0.31';
export type RoleName = 'root' | 'targets' | 'snapshot' | 'timestamp';
export const TOP_LEVEL_ROLES: RoleName[] = ['root', 'targets', 'snapshot', 'timestamp'];

export interface PublicKey {
  keytype: 'ed25519';
  scheme: 'ed25519';
  keyval: { public: string }; // 64 hex digits
}

export interface RoleKeys {
  keyids: string[];
  threshold: number;
}

export interface RootSigned {
  _type: 'root';
  spec_version: string;
  consistent_snapshot: boolean;
  version: number;
  expires: string; // "YYYY-MM-DDTHH:MM:SSZ"
  keys: Record<string, PublicKey>;
  roles: Record<RoleName, RoleKeys>;
}

export interface Signature {
  keyid: string;
  sig: string;
}

export interface Envelope<T> {
  signatures: Signature[];
  signed: T;
}

/** Signs canonical bytes. The private key never leaves the implementation. */
export interface Signer {
  readonly keyid: string;
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

export function publicKeyObject(raw: Uint8Array): PublicKey {
  return { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: toHex(raw) } };
}

/** The TUF key id: SHA-256 of the key's canonical JSON, lowercase hex. */
export function keyIdOf(key: PublicKey, crypto: ImageCrypto): string {
  return toHex(crypto.sha256(canonicalBytes(key)));
}

/** Parse "YYYY-MM-DDTHH:MM:SSZ" (the only form TUF uses) to unix seconds; NaN if malformed. */
export function parseUtc(s: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/.exec(s);
  if (!m) return NaN;
  const y = +m[1], mo = +m[2], d = +m[3], h = +m[4], mi = +m[5], se = +m[6];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return NaN;
  const ms = Date.UTC(y, mo - 1, d, h, mi, se);
  // Date.UTC rolls 2026-02-31 into March; refuse it instead.
  if (new Date(ms).getUTCDate() !== d) return NaN;
  return ms / 1000;
}

export function formatUtc(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.prototype.toString.call(v) !== '[object Array]';
}

/** Parse UTF-8 JSON bytes of an envelope; E_META_FORMAT for anything that is not one. */
export function parseEnvelope(bytes: Uint8Array): Envelope<unknown> {
  const text = utf8Decode(bytes);
  if (text === null) throw new MetadataError('E_META_FORMAT', 'metadata is not valid UTF-8');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new MetadataError('E_META_FORMAT', 'metadata is not valid JSON', e);
  }
  if (!isObject(v) || !isObject(v.signed) || Object.prototype.toString.call(v.signatures) !== '[object Array]') {
    throw new MetadataError('E_META_FORMAT', 'metadata must be an object with "signed" and "signatures"');
  }
  return v as unknown as Envelope<unknown>;
}

/** Check the shape of root metadata, fail closed on anything we do not understand. */
export function checkRootShape(s: unknown, crypto: ImageCrypto): RootSigned {
  if (!isObject(s)) throw new MetadataError('E_META_FORMAT', 'root "signed" is not an object');
  if (s._type !== 'root') throw new MetadataError('E_META_TYPE', 'expected root metadata, got _type ' + JSON.stringify(s._type));
  if (typeof s.spec_version !== 'string' || !/^1\.\d+(\.\d+)?$/.test(s.spec_version)) {
    throw new MetadataError('E_META_SPEC', 'unsupported TUF spec_version ' + JSON.stringify(s.spec_version));
  }
  if (typeof s.version !== 'number' || s.version < 1 || Math.floor(s.version) !== s.version) {
    throw new MetadataError('E_META_FORMAT', 'root version must be a positive integer');
  }
  if (typeof s.expires !== 'string' || isNaN(parseUtc(s.expires))) {
    throw new MetadataError('E_META_FORMAT', 'root expires must be YYYY-MM-DDTHH:MM:SSZ');
  }
  if (typeof s.consistent_snapshot !== 'boolean') throw new MetadataError('E_META_FORMAT', 'root consistent_snapshot must be a boolean');
  if (!isObject(s.keys) || !isObject(s.roles)) throw new MetadataError('E_META_FORMAT', 'root needs "keys" and "roles" objects');
  const keys = s.keys as Record<string, unknown>;
  const keyNames = Object.keys(keys);
  for (let i = 0; i < keyNames.length; i++) {
    const k = keys[keyNames[i]];
    if (!isObject(k) || k.keytype !== 'ed25519' || k.scheme !== 'ed25519' || !isObject(k.keyval) ||
        typeof k.keyval.public !== 'string' || !/^[0-9a-f]{64}$/.test(k.keyval.public)) {
      throw new MetadataError('E_META_KEY', 'key ' + keyNames[i] + ' is not an ed25519 key this verifier supports');
    }
    if (keyIdOf(k as unknown as PublicKey, crypto) !== keyNames[i]) {
      throw new MetadataError('E_META_KEY', 'key id ' + keyNames[i] + ' does not match its key');
    }
  }
  const roles = s.roles as Record<string, unknown>;
  for (let i = 0; i < TOP_LEVEL_ROLES.length; i++) {
    const r = roles[TOP_LEVEL_ROLES[i]];
    if (!isObject(r) || Object.prototype.toString.call(r.keyids) !== '[object Array]' ||
        typeof r.threshold !== 'number' || r.threshold < 1 || Math.floor(r.threshold) !== r.threshold) {
      throw new MetadataError('E_META_FORMAT', 'root role "' + TOP_LEVEL_ROLES[i] + '" needs keyids and a threshold ≥ 1');
    }
    const ids = r.keyids as unknown[];
    for (let j = 0; j < ids.length; j++) {
      if (typeof ids[j] !== 'string' || !Object.prototype.hasOwnProperty.call(keys, ids[j] as string)) {
        throw new MetadataError('E_META_KEY', 'role "' + TOP_LEVEL_ROLES[i] + '" names key ' + String(ids[j]) + ' that root does not list');
      }
    }
    if (r.threshold > ids.length) {
      throw new MetadataError('E_META_FORMAT', 'role "' + TOP_LEVEL_ROLES[i] + '" threshold ' + r.threshold + ' exceeds its ' + ids.length + ' keys');
    }
  }
  return s as unknown as RootSigned;
}

/**
 * Count distinct keys of `role` (as defined in `trusted`) with a valid signature over the
 * canonical bytes of `envelope.signed`, and refuse below the threshold. Signatures by other
 * keys are ignored, as the spec says.
 */
export function checkThreshold(envelope: Envelope<unknown>, trusted: RootSigned, role: RoleName, crypto: ImageCrypto): number {
  const r = trusted.roles[role];
  const message = canonicalBytes(envelope.signed);
  const counted: Record<string, boolean> = {};
  let valid = 0;
  for (let i = 0; i < envelope.signatures.length; i++) {
    const s = envelope.signatures[i] as unknown;
    if (!isObject(s) || typeof s.keyid !== 'string' || typeof s.sig !== 'string') continue;
    if (counted[s.keyid] || r.keyids.indexOf(s.keyid) < 0) continue;
    const key = trusted.keys[s.keyid];
    const pub = fromHex(key.keyval.public);
    const sig = fromHex(s.sig);
    if (pub && sig && crypto.ed25519Verify(sig, message, pub)) {
      counted[s.keyid] = true;
      valid++;
    }
  }
  if (valid < r.threshold) {
    throw new MetadataError('E_META_THRESHOLD', role + ' metadata has ' + valid + ' valid signature(s), needs ' + r.threshold);
  }
  return valid;
}

/**
 * Accept a root we were handed as a trust anchor (shipped in the initramfs, or given with
 * --root): it must be well-formed, signed by its own root threshold and, if a clock is
 * available, not expired.
 */
export function verifyTrustedRoot(bytes: Uint8Array, crypto: ImageCrypto, nowSeconds?: number | null): RootSigned {
  const env = parseEnvelope(bytes);
  const root = checkRootShape(env.signed, crypto);
  checkThreshold(env, root, 'root', crypto);
  if (nowSeconds !== undefined && nowSeconds !== null && parseUtc(root.expires) <= nowSeconds) {
    throw new MetadataError('E_META_EXPIRED', 'root metadata version ' + root.version + ' expired at ' + root.expires);
  }
  return root;
}

/**
 * TUF 5.3.4-5.3.5: a new root is trusted only if signed by a threshold of the *old* root's
 * keys and of its *own* keys, and its version is exactly one more. Expiry is checked by the
 * caller after the whole chain is walked (5.3.10), so that an old expired link can be passed.
 */
export function verifyRootUpdate(trusted: RootSigned, bytes: Uint8Array, crypto: ImageCrypto): RootSigned {
  const env = parseEnvelope(bytes);
  const next = checkRootShape(env.signed, crypto);
  checkThreshold(env, trusted, 'root', crypto); // 5.3.4 (old keys)
  checkThreshold(env, next, 'root', crypto); // 5.3.4 (new keys)
  if (next.version !== trusted.version + 1) { // 5.3.5
    throw new MetadataError('E_META_VERSION', 'root version ' + next.version + ' does not follow trusted version ' + trusted.version);
  }
  return next;
}

// The targets, snapshot and timestamp roles and their shape checks are in roles.ts.

/** True when `expires` is at or before `nowSeconds` (the spec's "expired" for 5.3.10–5.6.5). */
export function isExpired(expires: string, nowSeconds: number): boolean {
  const t = parseUtc(expires);
  return isNaN(t) || t <= nowSeconds;
}

/** Did the keys or threshold of `role` change between two roots (5.3.11)? */
export function roleKeysChanged(a: RootSigned, b: RootSigned, role: RoleName): boolean {
  const x = a.roles[role];
  const y = b.roles[role];
  if (x.threshold !== y.threshold || x.keyids.length !== y.keyids.length) return true;
  for (let i = 0; i < x.keyids.length; i++) if (y.keyids.indexOf(x.keyids[i]) < 0) return true;
  return false;
}
