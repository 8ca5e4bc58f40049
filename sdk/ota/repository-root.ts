/**
 * Root key ceremonies (`signet root new/sign/verify`): the next root version as an unsigned
 * file, each holder's signature added on their own machine, copies merged only when they
 * hold the same signed bytes, and the report of who signed against the old and the new root
 * thresholds — the two checks a client makes (TUF 5.3.4). No I/O: bytes in, bytes out.
 */
import type { ImageCrypto } from '../image/crypto';
import { fromHex, toHex, utf8Encode } from '../util/bytes';
import { canonicalBytes, canonicalString } from '../util/canonical-json';
import { MetadataError } from './errors';
import {
  checkKeyObject, checkRootShape, formatUtc, keyIdOf, parseEnvelope, TOP_LEVEL_ROLES, verifyRootUpdate, verifyTrustedRoot,
  type Envelope, type PublicKey, type RoleName, type RootSigned, type Signature, type Signer,
} from './metadata';
import { RepositoryError } from './repository-errors';

export interface RootEdits {
  addKeys?: { role: string; key: unknown }[];
  removeKeys?: { role: string; keyid: string }[];
  thresholds?: { role: string; threshold: number }[];
  expiresDays?: number;
}

export const DEFAULT_ROOT_EXPIRES_DAYS = 365;

/** The file a ceremony passes around: the envelope as indented JSON (signatures are over canonical bytes). */
export function encodeRootFile(env: Envelope<RootSigned>): Uint8Array {
  return utf8Encode(JSON.stringify(JSON.parse(canonicalString(env)), null, 2) + '\n');
}

function roleName(role: string): RoleName {
  if ((TOP_LEVEL_ROLES as string[]).indexOf(role) < 0) {
    throw new RepositoryError('E_ROOT_EDIT', `unknown role "${role}": use root, targets, snapshot or timestamp`);
  }
  return role as RoleName;
}

/** A key id as given (full, or a unique prefix of at least 8 hex digits) resolved in `ids`. */
function resolveKeyId(given: string, ids: string[], role: string): string {
  if (!/^[0-9a-f]{8,64}$/.test(given)) throw new RepositoryError('E_ROOT_EDIT', `"${given}" is not a key id (8 to 64 lowercase hex digits)`);
  const hits = ids.filter((id) => id.startsWith(given));
  if (hits.length !== 1) {
    throw new RepositoryError('E_ROOT_EDIT', hits.length ? `key id ${given} matches ${hits.length} keys of ${role}; give more digits` : `role ${role} has no key ${given}`);
  }
  return hits[0];
}

/**
 * The next root: `from` (which must verify on its own) with the edits applied, version + 1,
 * a fresh expiry and no signatures. Keys no role uses any more are dropped from `keys`.
 */
export function nextRoot(fromBytes: Uint8Array, edits: RootEdits, crypto: ImageCrypto, nowSeconds: number): Envelope<RootSigned> {
  const from = verifyTrustedRoot(fromBytes, crypto, null);
  const next = JSON.parse(JSON.stringify(from)) as RootSigned;
  next.version = from.version + 1;
  for (const a of edits.addKeys ?? []) {
    const role = roleName(a.role);
    checkKeyObject(a.key, 'the key to add to ' + role);
    const key = a.key as PublicKey;
    const clean: PublicKey = { keytype: key.keytype, scheme: key.scheme, keyval: { public: key.keyval.public } };
    const id = keyIdOf(clean, crypto);
    if (next.roles[role].keyids.indexOf(id) >= 0) throw new RepositoryError('E_ROOT_EDIT', `key ${id.slice(0, 16)}… is already a ${role} key`);
    next.keys[id] = clean;
    next.roles[role].keyids.push(id);
  }
  for (const r of edits.removeKeys ?? []) {
    const role = roleName(r.role);
    const id = resolveKeyId(r.keyid, next.roles[role].keyids, role);
    next.roles[role].keyids = next.roles[role].keyids.filter((k) => k !== id);
  }
  for (const t of edits.thresholds ?? []) {
    const role = roleName(t.role);
    if (!Number.isInteger(t.threshold) || t.threshold < 1) throw new RepositoryError('E_ROOT_EDIT', `threshold for ${role} must be 1 or more`);
    next.roles[role].threshold = t.threshold;
  }
  for (const role of TOP_LEVEL_ROLES) {
    const r = next.roles[role];
    if (r.keyids.length === 0) throw new RepositoryError('E_ROOT_EDIT', `role ${role} would have no keys left`);
    if (r.threshold > r.keyids.length) {
      throw new RepositoryError('E_ROOT_EDIT', `role ${role} would need ${r.threshold} signatures from ${r.keyids.length} key(s); lower it with --threshold ${role}=N`);
    }
  }
  const used = new Set<string>();
  for (const role of TOP_LEVEL_ROLES) for (const id of next.roles[role].keyids) used.add(id);
  for (const id of Object.keys(next.keys)) if (!used.has(id)) delete next.keys[id];
  next.expires = formatUtc(nowSeconds + (edits.expiresDays ?? DEFAULT_ROOT_EXPIRES_DAYS) * 86400);
  checkRootShape(next, crypto); // the same shape rules every client applies
  return { signatures: [], signed: next };
}

interface ParsedRoot {
  env: Envelope<RootSigned>;
  root: RootSigned;
  message: Uint8Array;
}

function parseRoot(bytes: Uint8Array, crypto: ImageCrypto): ParsedRoot {
  const env = parseEnvelope(bytes);
  const root = checkRootShape(env.signed, crypto);
  return { env: env as Envelope<RootSigned>, root, message: canonicalBytes(env.signed) };
}

/** The public key behind a key id, from the new root or the trusted one. */
function keyFor(keyid: string, roots: RootSigned[]): PublicKey | null {
  for (const r of roots) if (Object.prototype.hasOwnProperty.call(r.keys, keyid)) return r.keys[keyid];
  return null;
}

/**
 * Every signature the file holds must verify over its content with a key the new or the
 * trusted root lists: a signature made over other bytes (an edited file, another draft) is
 * refused, never carried along.
 */
function checkSignatures(p: ParsedRoot, trusted: RootSigned | null, crypto: ImageCrypto, what: string): Signature[] {
  const roots = trusted ? [p.root, trusted] : [p.root];
  const out: Signature[] = [];
  for (const s of p.env.signatures as unknown[]) {
    const sig = s as Signature;
    if (!sig || typeof sig.keyid !== 'string' || typeof sig.sig !== 'string') throw new MetadataError('E_META_FORMAT', what + ' holds a signature entry that is not {keyid, sig}');
    const key = keyFor(sig.keyid, roots);
    if (!key) {
      throw new RepositoryError('E_ROOT_SIGNATURE', `${what} holds a signature by key ${sig.keyid.slice(0, 16)}… that neither root lists` +
        (trusted ? '' : ' (pass the current root with --trusted if it is an old root key)'));
    }
    const raw = fromHex(sig.sig);
    const pub = fromHex(key.keyval.public);
    if (!raw || !pub || !crypto.ed25519Verify(raw, p.message, pub)) {
      throw new RepositoryError('E_ROOT_SIGNATURE', `${what} holds a signature by key ${sig.keyid.slice(0, 16)}… made over different bytes than its content`);
    }
    if (!out.some((o) => o.keyid === sig.keyid)) out.push({ keyid: sig.keyid, sig: sig.sig });
  }
  return out;
}

function isRootKey(keyid: string, roots: RootSigned[]): boolean {
  return roots.some((r) => r.roles.root.keyids.indexOf(keyid) >= 0);
}

export interface SignRootResult {
  bytes: Uint8Array;
  version: number;
  keyid: string;
  /** False when this key had signed already (the file is unchanged). */
  added: boolean;
  signatures: number;
}

/** Add one holder's signature to a root file (root keys of the new root, or of `trusted`). */
export async function signRoot(bytes: Uint8Array, signer: Signer, trustedBytes: Uint8Array | null, crypto: ImageCrypto): Promise<SignRootResult> {
  const p = parseRoot(bytes, crypto);
  const trusted = trustedBytes ? trustedRootFor(p.root, trustedBytes, crypto) : null;
  const sigs = checkSignatures(p, trusted, crypto, 'the root file');
  const roots = trusted ? [p.root, trusted] : [p.root];
  if (!isRootKey(signer.keyid, roots)) {
    throw new RepositoryError('E_ROOT_KEY_UNKNOWN', `key ${signer.keyid.slice(0, 16)}… is not a root key of root version ${p.root.version}` +
      (trusted ? ` or ${trusted.version}` : ''));
  }
  if (sigs.some((s) => s.keyid === signer.keyid)) {
    return { bytes, version: p.root.version, keyid: signer.keyid, added: false, signatures: sigs.length };
  }
  const sig = await signer.sign(p.message);
  const pub = signer.publicKey;
  // A token or key file that signs wrongly must not produce a file that fails only later.
  if (!crypto.ed25519Verify(sig, p.message, pub)) throw new RepositoryError('E_ROOT_SIGNATURE', `key ${signer.keyid.slice(0, 16)}… produced a signature that does not verify`);
  sigs.push({ keyid: signer.keyid, sig: toHex(sig) });
  return { bytes: encodeRootFile({ signatures: sigs, signed: p.root }), version: p.root.version, keyid: signer.keyid, added: true, signatures: sigs.length };
}

/** Merge the signatures of another holder's copy; refused unless both copies sign the same bytes. */
export function mergeRoot(bytes: Uint8Array, otherBytes: Uint8Array, trustedBytes: Uint8Array | null, crypto: ImageCrypto): { bytes: Uint8Array; added: string[]; signatures: number } {
  const a = parseRoot(bytes, crypto);
  const b = parseRoot(otherBytes, crypto);
  if (toHex(crypto.sha256(a.message)) !== toHex(crypto.sha256(b.message))) {
    throw new RepositoryError('E_ROOT_MISMATCH', `the two root files hold different content (versions ${a.root.version} and ${b.root.version}); their signatures are over different bytes`);
  }
  const trusted = trustedBytes ? trustedRootFor(a.root, trustedBytes, crypto) : null;
  const sigs = checkSignatures(a, trusted, crypto, 'the root file');
  const more = checkSignatures(b, trusted, crypto, 'the other copy');
  const added: string[] = [];
  for (const s of more) {
    if (!sigs.some((x) => x.keyid === s.keyid)) {
      sigs.push(s);
      added.push(s.keyid);
    }
  }
  return { bytes: added.length ? encodeRootFile({ signatures: sigs, signed: a.root }) : bytes, added, signatures: sigs.length };
}

function trustedRootFor(next: RootSigned, trustedBytes: Uint8Array, crypto: ImageCrypto): RootSigned {
  const trusted = verifyTrustedRoot(trustedBytes, crypto, null);
  if (next.version !== trusted.version + 1) {
    throw new MetadataError('E_META_VERSION', `root version ${next.version} does not follow the trusted root version ${trusted.version}`);
  }
  return trusted;
}

export interface ThresholdReport {
  which: 'old' | 'new';
  version: number;
  threshold: number;
  signed: string[];
  missing: string[];
}

export interface RootReport {
  version: number;
  trustedVersion: number;
  old: ThresholdReport;
  new: ThresholdReport;
  /** Signatures by keys that are not root keys of either root (ignored by clients). */
  ignored: string[];
  ok: boolean;
}

/**
 * Who signed a root file and what is missing, against the trusted root's root threshold and
 * the new root's own (TUF 5.3.4). `ok` is the clients' verdict (verifyRootUpdate), not ours.
 */
export function rootReport(bytes: Uint8Array, trustedBytes: Uint8Array, crypto: ImageCrypto): RootReport {
  const p = parseRoot(bytes, crypto);
  const trusted = trustedRootFor(p.root, trustedBytes, crypto);
  const sigs = checkSignatures(p, trusted, crypto, 'the root file');
  const signedIds = sigs.map((s) => s.keyid);
  const side = (which: 'old' | 'new', r: RootSigned): ThresholdReport => ({
    which, version: r.version, threshold: r.roles.root.threshold,
    signed: r.roles.root.keyids.filter((id) => signedIds.indexOf(id) >= 0),
    missing: r.roles.root.keyids.filter((id) => signedIds.indexOf(id) < 0),
  });
  const ignored = signedIds.filter((id) => !isRootKey(id, [p.root, trusted]));
  let ok = true;
  try {
    verifyRootUpdate(trusted, bytes, crypto);
  } catch (e) {
    if ((e as { code?: string }).code !== 'E_META_THRESHOLD') throw e;
    ok = false;
  }
  return { version: p.root.version, trustedVersion: trusted.version, old: side('old', trusted), new: side('new', p.root), ignored, ok };
}
