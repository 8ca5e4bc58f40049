/**
 * A real, signed TUF repository for OTA tests: real ed25519 keys per role, canonical JSON,
 * consistent snapshots (N.root.json, N.snapshot.json, N.targets.json, timestamp.json, targets
 * at <dir>/<sha256>.<basename>), root rotation as a chain of signed roots. Files live in memory
 * and are served by `tuf-repo-server.ts`; attacks take old files, re-sign with other keys, or
 * tell the server to misbehave. tuf-js refreshes this repository (tests/ota-client.test.ts),
 * so what the attacks start from is TUF as another client understands it.
 */
import { createHash } from 'node:crypto';
import { generateEd25519, type Ed25519KeyPair } from '../../sdk/keys/keyfile';
import { formatUtc, SPEC_VERSION, type RoleName, type RootSigned, type Signer } from '../../sdk/ota/metadata';
import type { MetaFile, SnapshotSigned, TargetCustom, TargetFile, TargetsSigned, TimestampSigned } from '../../sdk/ota/roles';
import { signEnvelope } from '../../sdk/ota/sign';
import type { Offer } from '../../sdk/ota/agent';
import { utf8Encode } from '../../sdk/util/bytes';
import { canonicalString } from '../../sdk/util/canonical-json';

export const DAY = 86400;

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

export function sha256Hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Metadata bytes as a repository serves them: canonical JSON of the envelope. */
export async function envelopeBytes(signed: unknown, signers: Signer[]): Promise<Uint8Array> {
  return utf8Encode(canonicalString(await signEnvelope(signed, signers)));
}

export function metaFor(bytes: Uint8Array, version: number, withHashes = true): MetaFile {
  return withHashes ? { version, length: bytes.length, hashes: { sha256: sha256Hex(bytes) } } : { version };
}

export interface RoleKeys {
  root: Ed25519KeyPair[];
  targets: Ed25519KeyPair[];
  snapshot: Ed25519KeyPair[];
  timestamp: Ed25519KeyPair[];
}

export interface RepoOptions {
  rootCount?: number;
  rootThreshold?: number;
  targetsCount?: number;
  targetsThreshold?: number;
  /** Days until metadata expires (default 30). */
  expiresDays?: number;
}

export interface PublishOptions {
  /** Who signs each role (default: all of the role's current keys). */
  targetsSigners?: Signer[];
  snapshotSigners?: Signer[];
  timestampSigners?: Signer[];
  /** Absolute unix-second expiries per role. */
  expires?: Partial<Record<'targets' | 'snapshot' | 'timestamp', number>>;
  /** Put length and hashes in timestamp/snapshot meta (default true). */
  hashes?: boolean;
}

export interface RotateOptions {
  root?: Ed25519KeyPair[];
  rootThreshold?: number;
  targets?: Ed25519KeyPair[];
  targetsThreshold?: number;
  snapshot?: Ed25519KeyPair[];
  timestamp?: Ed25519KeyPair[];
  /** Absolute unix seconds. */
  expires?: number;
  /** Sign with these instead of old + new root keys (attacks). */
  signers?: Signer[];
}

export class TestRepo {
  readonly files = new Map<string, Uint8Array>();
  keys: RoleKeys;
  thresholds: Record<RoleName, number>;
  root!: RootSigned;
  /** The device's built-in root: version 1. */
  rootBytes!: Uint8Array;
  readonly targets: Record<string, TargetFile> = {};
  readonly version = { targets: 0, snapshot: 0, timestamp: 0 };
  readonly expiresDays: number;

  private constructor(keys: RoleKeys, thresholds: Record<RoleName, number>, expiresDays: number) {
    this.keys = keys;
    this.thresholds = thresholds;
    this.expiresDays = expiresDays;
  }

  static async create(o: RepoOptions = {}): Promise<TestRepo> {
    const gen = (n: number) => Array.from({ length: n }, () => generateEd25519());
    const keys: RoleKeys = {
      root: gen(o.rootCount ?? o.rootThreshold ?? 1),
      targets: gen(o.targetsCount ?? o.targetsThreshold ?? 1),
      snapshot: gen(1),
      timestamp: gen(1),
    };
    const repo = new TestRepo(keys, { root: o.rootThreshold ?? 1, targets: o.targetsThreshold ?? 1, snapshot: 1, timestamp: 1 }, o.expiresDays ?? 30);
    repo.root = repo.rootSigned(1, nowSeconds() + repo.expiresDays * DAY);
    repo.rootBytes = await envelopeBytes(repo.root, keys.root.map((k) => k.signer));
    repo.files.set('metadata/1.root.json', repo.rootBytes);
    return repo;
  }

  private rootSigned(version: number, expires: number): RootSigned {
    const keys: RootSigned['keys'] = {};
    const all = [...this.keys.root, ...this.keys.targets, ...this.keys.snapshot, ...this.keys.timestamp];
    for (const k of all) keys[k.signer.keyid] = k.publicKey;
    const ids = (ks: Ed25519KeyPair[]) => ks.map((k) => k.signer.keyid);
    return {
      _type: 'root',
      spec_version: SPEC_VERSION,
      consistent_snapshot: true,
      version,
      expires: formatUtc(expires),
      keys,
      roles: {
        root: { keyids: ids(this.keys.root), threshold: this.thresholds.root },
        targets: { keyids: ids(this.keys.targets), threshold: this.thresholds.targets },
        snapshot: { keyids: ids(this.keys.snapshot), threshold: this.thresholds.snapshot },
        timestamp: { keyids: ids(this.keys.timestamp), threshold: this.thresholds.timestamp },
      },
    };
  }

  signers(role: keyof RoleKeys): Signer[] {
    return this.keys[role].map((k) => k.signer);
  }

  file(path: string): Uint8Array {
    const f = this.files.get(path);
    if (!f) throw new Error('no file ' + path + ' in the test repository');
    return f;
  }

  /** The URL path (under /tuf/targets/) of a target: <dir>/<sha256>.<basename>. */
  targetPath(name: string): string {
    const h = this.targets[name].hashes.sha256;
    const i = name.lastIndexOf('/');
    return i < 0 ? `${h}.${name}` : `${name.slice(0, i + 1)}${h}.${name.slice(i + 1)}`;
  }

  /** Add a release image as a target (`<board>/<name>-<version>.simg`); publish() makes it visible. */
  addTarget(bytes: Uint8Array, custom: TargetCustom, name = `${custom.board}/${custom.name}-${custom.version}.simg`): string {
    this.targets[name] = { length: bytes.length, hashes: { sha256: sha256Hex(bytes) }, custom: { ...custom } };
    this.files.set('targets/' + this.targetPath(name), bytes);
    return name;
  }

  offerFor(name: string, rollout = 'rollout-1'): Offer {
    const t = this.targets[name];
    const c = t.custom;
    return { target: name, version: c.version, securityCounter: c.securityCounter, length: t.length, sha256: t.hashes.sha256, rollout };
  }

  targetsSigned(version: number, expires?: number): TargetsSigned {
    return {
      _type: 'targets', spec_version: SPEC_VERSION, version,
      expires: formatUtc(expires ?? nowSeconds() + this.expiresDays * DAY),
      targets: JSON.parse(JSON.stringify(this.targets)),
    };
  }

  snapshotSigned(version: number, targetsMeta: MetaFile, expires?: number): SnapshotSigned {
    return {
      _type: 'snapshot', spec_version: SPEC_VERSION, version,
      expires: formatUtc(expires ?? nowSeconds() + this.expiresDays * DAY),
      meta: { 'targets.json': targetsMeta },
    };
  }

  timestampSigned(version: number, snapshotMeta: MetaFile, expires?: number): TimestampSigned {
    return {
      _type: 'timestamp', spec_version: SPEC_VERSION, version,
      expires: formatUtc(expires ?? nowSeconds() + 1 * DAY),
      meta: { 'snapshot.json': snapshotMeta },
    };
  }

  /** New targets, snapshot and timestamp versions, signed, in place. */
  async publish(o: PublishOptions = {}): Promise<void> {
    const hashes = o.hashes ?? true;
    const tv = ++this.version.targets;
    const targets = await envelopeBytes(this.targetsSigned(tv, o.expires?.targets), o.targetsSigners ?? this.signers('targets'));
    this.files.set(`metadata/${tv}.targets.json`, targets);
    const sv = ++this.version.snapshot;
    const snapshot = await envelopeBytes(this.snapshotSigned(sv, metaFor(targets, tv, hashes), o.expires?.snapshot), o.snapshotSigners ?? this.signers('snapshot'));
    this.files.set(`metadata/${sv}.snapshot.json`, snapshot);
    await this.publishTimestamp({ ...o, hashes });
  }

  /** Only a new timestamp (what the server does every few minutes). */
  async publishTimestamp(o: PublishOptions = {}): Promise<void> {
    const sv = this.version.snapshot;
    const snapshot = this.file(`metadata/${sv}.snapshot.json`);
    const tsv = ++this.version.timestamp;
    const ts = await envelopeBytes(this.timestampSigned(tsv, metaFor(snapshot, sv, o.hashes ?? true), o.expires?.timestamp), o.timestampSigners ?? this.signers('timestamp'));
    this.files.set('metadata/timestamp.json', ts);
  }

  /** Root version N+1 with new keys for some roles, signed by the old and the new root keys. */
  async rotateRoot(o: RotateOptions = {}): Promise<RootSigned> {
    const oldRootSigners = this.signers('root');
    if (o.root) this.keys.root = o.root;
    if (o.rootThreshold) this.thresholds.root = o.rootThreshold;
    if (o.targets) this.keys.targets = o.targets;
    if (o.targetsThreshold) this.thresholds.targets = o.targetsThreshold;
    if (o.snapshot) this.keys.snapshot = o.snapshot;
    if (o.timestamp) this.keys.timestamp = o.timestamp;
    const next = this.rootSigned(this.root.version + 1, o.expires ?? nowSeconds() + this.expiresDays * DAY);
    const signers = o.signers ?? [...oldRootSigners, ...this.signers('root').filter((s) => !oldRootSigners.some((x) => x.keyid === s.keyid))];
    this.files.set(`metadata/${next.version}.root.json`, await envelopeBytes(next, signers));
    this.root = next;
    return next;
  }
}
