/**
 * The writer side of a Signet TUF repository: the file names clients fetch, adding a release to
 * targets metadata (signed offline by the vendor), checking uploaded targets metadata (on the
 * server), and making the next snapshot and timestamp (signed online by the server).
 *
 * No I/O and no key material: signers and crypto come in as arguments, so the server, the
 * `publish` command and the tests that build hostile repositories all run this same code.
 */
import { toHex } from '../util/bytes';
import { canonicalBytes } from '../util/canonical-json';
import type { ImageCrypto } from '../image/crypto';
import { decodeLayout } from '../image/format';
import { decodeManifest, type Manifest } from '../image/manifest';
import { MetadataError } from './errors';
import { checkThreshold, formatUtc, parseEnvelope, parseUtc, SPEC_VERSION, type Envelope, type RootSigned, type Signer } from './metadata';
import {
  checkTargetsShape, targetNameFor, type MetaFile, type SnapshotSigned, type TargetFile, type TargetsSigned, type TimestampSigned,
} from './roles';
import { RepositoryError } from './repository-errors';
import { signEnvelope } from './sign';

export type MetadataRole = 'root' | 'targets' | 'snapshot' | 'timestamp';

/** Default lifetimes. Timestamp is short so that a frozen mirror is noticed within a day. */
export const DEFAULT_TARGETS_EXPIRES_S = 365 * 86400;
export const DEFAULT_SNAPSHOT_EXPIRES_S = 30 * 86400;
export const DEFAULT_TIMESTAMP_EXPIRES_S = 86400;

/** Consistent snapshots (TUF 5.x): `N.role.json` for all but the timestamp. */
export function metadataFileName(role: MetadataRole, version: number): string {
  return role === 'timestamp' ? 'timestamp.json' : version + '.' + role + '.json';
}

/**
 * Where a target is served with consistent snapshots: the hash prefixes the file name, not
 * the whole path (`board/<sha256>.name-1.3.0.simg`), as tuf-js and python-tuf build it.
 */
export function consistentTargetPath(name: string, sha256: string): string {
  const slash = name.lastIndexOf('/');
  return slash < 0 ? sha256 + '.' + name : name.slice(0, slash + 1) + sha256 + '.' + name.slice(slash + 1);
}

/** The exact bytes a repository serves for an envelope: canonical JSON, so lengths and hashes are stable. */
export function encodeMetadata(env: Envelope<unknown>): Uint8Array {
  return canonicalBytes(env);
}

export function metaFileFor(version: number, bytes: Uint8Array, crypto: ImageCrypto): MetaFile {
  return { version, length: bytes.length, hashes: { sha256: toHex(crypto.sha256(bytes)) } };
}

export interface ImageTarget {
  name: string;
  file: TargetFile;
  manifest: Manifest;
}

/** The targets entry for an app image, from its manifest (no trust decision; verify first). */
export function targetForImage(image: Uint8Array, crypto: ImageCrypto): ImageTarget {
  const layout = decodeLayout(image);
  const manifest = decodeManifest(layout.manifestBytes);
  const custom = { board: manifest.board, version: manifest.version, securityCounter: manifest.securityCounter, name: manifest.name };
  return {
    name: targetNameFor(custom),
    file: { length: image.length, hashes: { sha256: toHex(crypto.sha256(image)) }, custom },
    manifest,
  };
}

/**
 * The next targets metadata: the current one (or none yet) plus `target`, version + 1. A name
 * already published with other bytes is refused: devices and mirrors cache by name.
 */
export function addTarget(current: TargetsSigned | null, target: { name: string; file: TargetFile }, expires: string): TargetsSigned {
  const targets: Record<string, TargetFile> = {};
  if (current) {
    const names = Object.keys(current.targets);
    for (let i = 0; i < names.length; i++) targets[names[i]] = current.targets[names[i]];
  }
  const old = targets[target.name];
  if (old && old.hashes.sha256 !== target.file.hashes.sha256) {
    throw new RepositoryError('E_REPO_TARGET_CHANGED', target.name + ' is already published with sha256 ' + old.hashes.sha256.slice(0, 16) + '…');
  }
  targets[target.name] = target.file;
  return {
    _type: 'targets',
    spec_version: SPEC_VERSION,
    version: (current ? current.version : 0) + 1,
    expires,
    targets,
  };
}

export async function signTargets(signed: TargetsSigned, signers: Signer[]): Promise<Envelope<TargetsSigned>> {
  return signEnvelope(signed, signers);
}

export interface CheckedTargets {
  envelope: Envelope<TargetsSigned>;
  signed: TargetsSigned;
  bytes: Uint8Array; // as the repository will serve them (canonical)
}

/**
 * The server's check of targets metadata a vendor uploads: well-formed, signed by a threshold
 * of the root's targets keys, exactly one version after the current one, not expired, and
 * every name already published still points at the same bytes.
 */
export function checkTargetsUpload(
  uploaded: Uint8Array,
  root: RootSigned,
  current: TargetsSigned | null,
  crypto: ImageCrypto,
  nowSeconds: number,
): CheckedTargets {
  const env = parseEnvelope(uploaded);
  const signed = checkTargetsShape(env.signed);
  checkThreshold(env, root, 'targets', crypto);
  const expected = (current ? current.version : 0) + 1;
  if (signed.version !== expected) {
    throw new MetadataError('E_META_VERSION', 'targets version ' + signed.version + ' is not the next version ' + expected +
      ' (someone published meanwhile: fetch the current targets and sign again)');
  }
  if (parseUtc(signed.expires) <= nowSeconds) {
    throw new MetadataError('E_META_EXPIRED', 'targets metadata version ' + signed.version + ' expired at ' + signed.expires);
  }
  if (current) {
    const names = Object.keys(current.targets);
    for (let i = 0; i < names.length; i++) {
      const now = signed.targets[names[i]];
      if (now && now.hashes.sha256 !== current.targets[names[i]].hashes.sha256) {
        throw new RepositoryError('E_REPO_TARGET_CHANGED', names[i] + ' is already published with other bytes');
      }
    }
  }
  const envelope = env as Envelope<TargetsSigned>;
  return { envelope, signed, bytes: encodeMetadata(envelope) };
}

export interface SignedFile<T> {
  signed: T;
  bytes: Uint8Array;
  version: number;
}

export interface OnlineInput {
  targetsVersion: number;
  targetsBytes: Uint8Array;
  previousSnapshotVersion: number; // 0 if none
  previousTimestampVersion: number; // 0 if none
  snapshotSigners: Signer[];
  timestampSigners: Signer[];
  nowSeconds: number;
  snapshotExpiresS?: number;
  timestampExpiresS?: number;
  crypto: ImageCrypto;
}

/** A new snapshot naming the targets version, and a new timestamp naming that snapshot. */
export async function makeSnapshotAndTimestamp(o: OnlineInput): Promise<{ snapshot: SignedFile<SnapshotSigned>; timestamp: SignedFile<TimestampSigned> }> {
  const snap: SnapshotSigned = {
    _type: 'snapshot',
    spec_version: SPEC_VERSION,
    version: o.previousSnapshotVersion + 1,
    expires: formatUtc(o.nowSeconds + (o.snapshotExpiresS ?? DEFAULT_SNAPSHOT_EXPIRES_S)),
    meta: { 'targets.json': metaFileFor(o.targetsVersion, o.targetsBytes, o.crypto) },
  };
  const snapBytes = encodeMetadata(await signEnvelope(snap, o.snapshotSigners));
  const timestamp = await makeTimestamp({
    snapshotVersion: snap.version,
    snapshotBytes: snapBytes,
    previousTimestampVersion: o.previousTimestampVersion,
    timestampSigners: o.timestampSigners,
    nowSeconds: o.nowSeconds,
    timestampExpiresS: o.timestampExpiresS,
    crypto: o.crypto,
  });
  return { snapshot: { signed: snap, bytes: snapBytes, version: snap.version }, timestamp };
}

export interface TimestampInput {
  snapshotVersion: number;
  snapshotBytes: Uint8Array;
  previousTimestampVersion: number;
  timestampSigners: Signer[];
  nowSeconds: number;
  timestampExpiresS?: number;
  crypto: ImageCrypto;
}

/** A fresh timestamp for the same snapshot: what the server signs as the old one nears expiry. */
export async function makeTimestamp(o: TimestampInput): Promise<SignedFile<TimestampSigned>> {
  const ts: TimestampSigned = {
    _type: 'timestamp',
    spec_version: SPEC_VERSION,
    version: o.previousTimestampVersion + 1,
    expires: formatUtc(o.nowSeconds + (o.timestampExpiresS ?? DEFAULT_TIMESTAMP_EXPIRES_S)),
    meta: { 'snapshot.json': metaFileFor(o.snapshotVersion, o.snapshotBytes, o.crypto) },
  };
  return { signed: ts, bytes: encodeMetadata(await signEnvelope(ts, o.timestampSigners)), version: ts.version };
}

/** The online signers must be exactly the keys root names for snapshot and timestamp. */
export function checkOnlineSigners(root: RootSigned, snapshot: Signer[], timestamp: Signer[]): void {
  const check = (role: 'snapshot' | 'timestamp', signers: Signer[]) => {
    const r = root.roles[role];
    let ok = 0;
    for (let i = 0; i < signers.length; i++) if (r.keyids.indexOf(signers[i].keyid) >= 0) ok++;
    if (ok < r.threshold) {
      throw new RepositoryError('E_REPO_ONLINE_KEY', 'the ' + role + ' key(s) given are not the ones root version ' + root.version + ' names for ' + role);
    }
  };
  check('snapshot', snapshot);
  check('timestamp', timestamp);
  const offline = root.roles.root.keyids.concat(root.roles.targets.keyids);
  const all = snapshot.concat(timestamp);
  for (let i = 0; i < all.length; i++) {
    if (offline.indexOf(all[i].keyid) >= 0) {
      throw new RepositoryError('E_REPO_ONLINE_KEY', 'key ' + all[i].keyid.slice(0, 12) + ' is a root or targets key; online keys must be separate');
    }
  }
}
