/**
 * The TUF metadata model (spec 1.0.x): roles, keys, canonical JSON signing and the checks a
 * client makes on root metadata. Pure and ES5-safe: the boot stage and the OTA agent run it
 * on the device; the CLI and the server run it on Node. Crypto comes in as an argument.
 */
import { fromHex, toHex, utf8Decode } from '../util/bytes';
import { canonicalBytes } from '../util/canonical-json';
import { parseStrictJson } from '../util/strict-json';
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

function isPosInt(v: unknown): v is number {
  return typeof v === 'number' && v >= 1 && Math.floor(v) === v && v <= 9007199254740991;
}

/** Parse UTF-8 JSON bytes of an envelope; E_META_FORMAT for anything that is not one. */
export function parseEnvelope(bytes: Uint8Array): Envelope<unknown> {
  const text = utf8Decode(bytes);
  if (text === null) throw new MetadataError('E_META_FORMAT', 'metadata is not valid UTF-8');
  let v: unknown;
  try {
    // Strict: duplicate keys, floats and integers beyond 2^53 - 1 are refused (util/strict-json.ts).
    v = parseStrictJson(text);
  } catch (e) {
    throw new MetadataError('E_META_FORMAT', 'metadata is not strict JSON: ' + (e as Error).message, e);
  }
  if (!isObject(v) || !isObject(v.signed) || Object.prototype.toString.call(v.signatures) !== '[object Array]') {
    throw new MetadataError('E_META_FORMAT', 'metadata must be an object with "signed" and "signatures"');
  }
  return v as unknown as Envelope<unknown>;
}

/** The fields root metadata's `signed` object has; any other is refused (fail closed). */
const ROOT_FIELDS = ['_type', 'consistent_snapshot', 'expires', 'keys', 'roles', 'spec_version', 'version'];
const SPEC = /^1\.\d{1,4}(\.\d{1,4})?$/;
const HEX64 = /^[0-9a-f]{64}$/;

function onlyFields(o: Record<string, unknown>, allowed: string[], what: string, code: 'E_META_FORMAT' | 'E_META_KEY'): void {
  const names = Object.keys(o);
  for (let i = 0; i < names.length; i++) {
    if (allowed.indexOf(names[i]) < 0) throw new MetadataError(code, what + ' has a field this verifier does not know: ' + JSON.stringify(names[i]));
  }
}

/**
 * A key object must be exactly `{"keytype":"ed25519","keyval":{"public":<64 hex>},"scheme":"ed25519"}`:
 * no other field (`keyid_hash_algorithms`, `keyval.private`, …). Extra fields would give one
 * public key many key ids (the id hashes the whole object), and a private part has no business
 * in metadata. Returns the raw public key.
 */
export function checkKeyObject(k: unknown, what: string): Uint8Array {
  if (!isObject(k) || k.keytype !== 'ed25519' || k.scheme !== 'ed25519' || !isObject(k.keyval) ||
      typeof k.keyval.public !== 'string' || !HEX64.test(k.keyval.public)) {
    throw new MetadataError('E_META_KEY', what + ' is not an ed25519 key this verifier supports');
  }
  onlyFields(k, ['keytype', 'keyval', 'scheme'], what, 'E_META_KEY');
  onlyFields(k.keyval, ['public'], what + ' keyval', 'E_META_KEY');
  return fromHex(k.keyval.public) as Uint8Array;
}

/** Check the shape of root metadata, fail closed on anything we do not understand. */
export function checkRootShape(s: unknown, crypto: ImageCrypto): RootSigned {
  if (!isObject(s)) throw new MetadataError('E_META_FORMAT', 'root "signed" is not an object');
  if (s._type !== 'root') throw new MetadataError('E_META_TYPE', 'expected root metadata, got _type ' + JSON.stringify(s._type));
  if (typeof s.spec_version !== 'string' || !SPEC.test(s.spec_version)) {
    throw new MetadataError('E_META_SPEC', 'unsupported TUF spec_version ' + JSON.stringify(s.spec_version));
  }
  onlyFields(s, ROOT_FIELDS, 'root metadata', 'E_META_FORMAT');
  if (!isPosInt(s.version)) throw new MetadataError('E_META_FORMAT', 'root version must be an integer from 1 to 2^53 - 1');
  if (typeof s.expires !== 'string' || isNaN(parseUtc(s.expires))) {
    throw new MetadataError('E_META_FORMAT', 'root expires must be YYYY-MM-DDTHH:MM:SSZ');
  }
  if (typeof s.consistent_snapshot !== 'boolean') throw new MetadataError('E_META_FORMAT', 'root consistent_snapshot must be a boolean');
  if (!isObject(s.keys) || !isObject(s.roles)) throw new MetadataError('E_META_FORMAT', 'root needs "keys" and "roles" objects');
  const keys = s.keys as Record<string, unknown>;
  const keyNames = Object.keys(keys);
  const publics: Record<string, string> = {};
  for (let i = 0; i < keyNames.length; i++) {
    const raw = checkKeyObject(keys[keyNames[i]], 'key ' + keyNames[i]);
    if (keyIdOf(keys[keyNames[i]] as PublicKey, crypto) !== keyNames[i]) {
      throw new MetadataError('E_META_KEY', 'key id ' + keyNames[i] + ' does not match its key');
    }
    // With the closed key shape this cannot happen; it is the rule that matters, so check it.
    const pub = toHex(raw);
    if (publics['$' + pub]) throw new MetadataError('E_META_KEY', 'public key ' + pub.slice(0, 16) + '… is listed under two key ids');
    publics['$' + pub] = keyNames[i];
  }
  const roles = s.roles as Record<string, unknown>;
  onlyFields(roles, TOP_LEVEL_ROLES, 'root roles', 'E_META_FORMAT');
  for (let i = 0; i < TOP_LEVEL_ROLES.length; i++) {
    const r = roles[TOP_LEVEL_ROLES[i]];
    if (!isObject(r) || Object.prototype.toString.call(r.keyids) !== '[object Array]' || !isPosInt(r.threshold)) {
      throw new MetadataError('E_META_FORMAT', 'root role "' + TOP_LEVEL_ROLES[i] + '" needs keyids and a threshold ≥ 1');
    }
    onlyFields(r, ['keyids', 'threshold'], 'root role "' + TOP_LEVEL_ROLES[i] + '"', 'E_META_FORMAT');
    const ids = r.keyids as unknown[];
    const seen: Record<string, boolean> = {};
    for (let j = 0; j < ids.length; j++) {
      if (typeof ids[j] !== 'string' || !Object.prototype.hasOwnProperty.call(keys, ids[j] as string)) {
        throw new MetadataError('E_META_KEY', 'role "' + TOP_LEVEL_ROLES[i] + '" names key ' + String(ids[j]) + ' that root does not list');
      }
      if (seen['$' + ids[j]]) throw new MetadataError('E_META_KEY', 'role "' + TOP_LEVEL_ROLES[i] + '" lists key ' + ids[j] + ' twice');
      seen['$' + ids[j]] = true;
    }
    if ((r.threshold as number) > ids.length) {
      throw new MetadataError('E_META_FORMAT', 'role "' + TOP_LEVEL_ROLES[i] + '" threshold ' + r.threshold + ' exceeds its ' + ids.length + ' keys');
    }
  }
  return s as unknown as RootSigned;
}

/**
 * Count distinct *public keys* of `role` (as defined in `trusted`) with a valid signature over
 * the canonical bytes of `envelope.signed`, and refuse below the threshold. A key is counted
 * once however many key ids or signature entries name it. Signatures by other keys are
 * ignored, as the spec says.
 */
export function checkThreshold(envelope: Envelope<unknown>, trusted: RootSigned, role: RoleName, crypto: ImageCrypto): number {
  const r = trusted.roles[role];
  const message = canonicalBytes(envelope.signed);
  const counted: Record<string, boolean> = {};
  let valid = 0;
  for (let i = 0; i < envelope.signatures.length; i++) {
    const s = envelope.signatures[i] as unknown;
    if (!isObject(s) || typeof s.keyid !== 'string' || typeof s.sig !== 'string') continue;
    if (r.keyids.indexOf(s.keyid) < 0 || !Object.prototype.hasOwnProperty.call(trusted.keys, s.keyid)) continue;
    const key = trusted.keys[s.keyid];
    if (counted['$' + key.keyval.public]) continue;
    const pub = fromHex(key.keyval.public);
    const sig = fromHex(s.sig);
    if (pub && sig && crypto.ed25519Verify(sig, message, pub)) {
      counted['$' + key.keyval.public] = true;
      valid++;
    }
  }
  if (valid < r.threshold) {
    throw new MetadataError('E_META_THRESHOLD', role + ' metadata has ' + valid + ' valid signature(s) by distinct keys, needs ' + r.threshold);
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
