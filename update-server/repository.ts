/**
 * The server's TUF repository: serves metadata and targets from storage, accepts a release
 * (blob, then targets metadata signed offline by the vendor), and signs snapshot and
 * timestamp with the online keys. Root and targets private keys are never here.
 *
 * Order of a publish (docs/ota-protocol.md §4): the blob is complete, hashed and renamed into
 * place first (uploadBlob); then publish() checks the targets metadata against root and every
 * new target against its blob, and commits targets + snapshot + timestamp in one transaction.
 * Until that commit nothing a client can fetch names the new blob.
 */
import { nodeCrypto } from '../sdk/image/crypto-node';
import { verifyImage } from '../sdk/image/verify';
import { parseEnvelope, parseUtc, verifyRootUpdate, verifyTrustedRoot, type RootSigned, type Signer } from '../sdk/ota/metadata';
import {
  checkOnlineSigners, checkTargetsUpload, consistentTargetPath, makeSnapshotAndTimestamp, makeTimestamp, type MetadataRole,
} from '../sdk/ota/repository';
import { RepositoryError } from '../sdk/ota/repository-errors';
import { checkSnapshotShape, checkTargetsShape, checkTimestampShape, type TargetsSigned } from '../sdk/ota/roles';
import type { FitVerifyKey } from '../sdk/fit/fit-verify';
import { checkBootRelease } from '../sdk/ota/boot-target';
import { isBootTarget } from '../sdk/ota/roles';
import { checkBlob, checkedHead } from './blob-check';
import { ServerError } from './errors';
import type { MetadataRecord, Storage, TargetRecord } from './storage';

export interface RepositoryOptions {
  storage: Storage;
  snapshotSigners: Signer[];
  timestampSigners: Signer[];
  /** Unix seconds. */
  clock: () => number;
  snapshotExpiresS?: number;
  timestampExpiresS?: number;
  /** The FIT public key(s) boot images must verify against (fit-pub.dtb); none: boot images are refused. */
  fitKeys?: readonly FitVerifyKey[];
}

export interface PublishResult {
  targetsVersion: number;
  snapshotVersion: number;
  timestampVersion: number;
  added: { name: string; sha256: string; length: number; path: string }[];
}

const META_FILE = /^(?:(\d{1,10})\.(root|targets|snapshot)|(timestamp))\.json$/;

export class Repository {
  private readonly storage: Storage;
  private root!: RootSigned;
  private chain: Promise<unknown> = Promise.resolve();
  /** Unix seconds before which refresh() has nothing to do (0 = check). */
  private refreshAfter = 0;
  private targetsCache: { version: number; value: { signed: TargetsSigned; bytes: Uint8Array } } | null = null;

  constructor(private readonly o: RepositoryOptions) {
    this.storage = o.storage;
  }

  /**
   * Serialize writers: a publish, a root update and a timestamp refresh never interleave, in
   * this process (the queue) nor across replicas sharing the storage (its lock). Under the lock
   * the root is brought up to what another replica may have committed, so this one signs with
   * the keys in force; the snapshot and timestamp each writer reads are the newest.
   */
  private exclusive<T>(f: () => Promise<T>): Promise<T> {
    const g = () => this.storage.exclusive(async () => {
      if (this.root) await this.syncRoot();
      return f();
    });
    const run = this.chain.then(g, g);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Follow the root chain to the newest root in storage (another replica may have added one). */
  private async syncRoot(): Promise<void> {
    const latest = await this.storage.latestMetadata('root');
    if (!latest || latest.version <= this.root.version) return;
    for (let v = this.root.version + 1; v <= latest.version; v++) {
      const rec = v === latest.version ? latest : await this.storage.metadata('root', v);
      if (!rec) throw new ServerError('E_SERVER_CONFIG', `root version ${v} is missing from storage`);
      this.root = verifyRootUpdate(this.root, rec.bytes, nodeCrypto);
    }
  }

  /**
   * Load the trusted root: the newest in storage, or `rootBytes` on a fresh repository. A
   * `rootBytes` exactly one version newer is accepted through the root chain (5.3.4–5.3.5).
   */
  async init(rootBytes: Uint8Array): Promise<void> {
    const now = this.o.clock();
    const given = verifyTrustedRoot(rootBytes, nodeCrypto, null);
    // Replicas starting together on an empty database: one commits the first root, the others find it.
    const stored = await this.storage.exclusive(async () => {
      const had = await this.storage.latestMetadata('root');
      if (!had) {
        checkOnlineSigners(given, this.o.snapshotSigners, this.o.timestampSigners);
        await this.storage.commitMetadata([{ role: 'root', version: given.version, bytes: rootBytes, createdAt: now }], [], { root: 0 });
      }
      return had;
    });
    if (!stored) {
      this.root = given;
    } else {
      this.root = verifyTrustedRoot(stored.bytes, nodeCrypto, null);
      if (given.version === this.root.version + 1) await this.updateRoot(rootBytes);
      else if (given.version > this.root.version + 1) {
        throw new ServerError('E_SERVER_CONFIG', `root.json is version ${given.version} but the repository is at ${this.root.version}; ` +
          'add the roots in between one at a time (POST /api/v1/root)');
      }
    }
    checkOnlineSigners(this.root, this.o.snapshotSigners, this.o.timestampSigners);
    await this.refresh();
  }

  trustedRoot(): RootSigned {
    return this.root;
  }

  /**
   * The online keys the trusted root names for `role`. The server may hold the next ones too
   * (snapshot-N.key, timestamp-N.key from `signet server keys`), so that a root rotating the
   * online keys can be pushed to a running server; it signs only with the ones in force.
   */
  private online(role: 'snapshot' | 'timestamp'): Signer[] {
    const all = role === 'snapshot' ? this.o.snapshotSigners : this.o.timestampSigners;
    const { keyids: ids, threshold } = this.root.roles[role];
    const held = all.filter((s) => ids.indexOf(s.keyid) >= 0);
    // Fail closed: never sign (and store) metadata clients would refuse — e.g. a replica that
    // followed a root another replica accepted before its own keys folder had the new keys.
    if (held.length < threshold) {
      throw new RepositoryError('E_REPO_ONLINE_KEY', `this server holds ${held.length} of the ${role} keys root version ${this.root.version} names (threshold ${threshold}); put them in its keys folder and send it SIGHUP`);
    }
    return held;
  }

  /**
   * Replace the online keys while running (`signet server` on SIGHUP, after new keys were put
   * in its keys folder): the new set must sign for the root in force exactly as at start
   * (checkOnlineSigners), else it is refused and the keys in force stay — never a gap in signing.
   */
  replaceOnlineSigners(snapshot: Signer[], timestamp: Signer[]): Promise<void> {
    return this.exclusive(async () => {
      checkOnlineSigners(this.root, snapshot, timestamp);
      this.o.snapshotSigners = snapshot;
      this.o.timestampSigners = timestamp;
    });
  }

  /** Accept the next root (signed by a threshold of the old and the new root keys). */
  updateRoot(bytes: Uint8Array): Promise<{ version: number }> {
    return this.exclusive(async () => {
      const next = verifyRootUpdate(this.root, bytes, nodeCrypto);
      checkOnlineSigners(next, this.o.snapshotSigners, this.o.timestampSigners);
      const now = this.o.clock();
      await this.storage.commitMetadata([{ role: 'root', version: next.version, bytes, createdAt: now }], [], { root: this.root.version });
      this.root = next;
      // Snapshot and timestamp keys may have rotated with root: re-sign both so that clients
      // who fetch the new root find online metadata its keys signed.
      const targets = await this.storage.latestMetadata('targets');
      if (targets) await this.resignOnline(targets);
      return { version: next.version };
    });
  }

  /** Current targets metadata (bytes as served), or null before the first publish. */
  async currentTargets(): Promise<{ signed: TargetsSigned; bytes: Uint8Array } | null> {
    // Read and parsed once per version: every check-in needs it, and asks only for the version.
    const version = await this.storage.latestVersion('targets');
    if (version === 0) return null;
    if (this.targetsCache?.version === version) return this.targetsCache.value;
    const rec = await this.storage.latestMetadata('targets');
    if (!rec) return null;
    if (this.targetsCache?.version !== rec.version) {
      this.targetsCache = { version: rec.version, value: { signed: checkTargetsShape(parseEnvelope(rec.bytes).signed), bytes: rec.bytes } };
    }
    return this.targetsCache.value;
  }

  /**
   * Step 1 of a publish: the image bytes, content-addressed. Only an image a device could be
   * offered is kept (blob-check.ts): its head is checked as it arrives, the whole before it
   * becomes visible.
   */
  uploadBlob(sha256: string, length: number, body: AsyncIterable<Uint8Array>): Promise<'stored' | 'existed'> {
    return this.storage.blobs.put(sha256, length, checkedHead(body, length), (bytes) => checkBlob(bytes, { root: this.root, now: this.o.clock(), fitKeys: this.o.fitKeys }));
  }

  /**
   * Remove blobs that no targets metadata names and that were stored (or uploaded again) more
   * than `graceS` seconds ago, so an upload waiting for its publish is never raced. Runs with
   * the writers (a publish commits either before it, naming the blob, or after it, finding it
   * gone only if it was older than the grace period). File ages are wall-clock.
   */
  collectBlobs(graceS: number): Promise<{ sha256: string; length: number }[]> {
    return this.exclusive(async () => {
      const keep = await this.storage.referencedBlobs();
      const before = Math.floor(Date.now() / 1000) - graceS;
      const removed: { sha256: string; length: number }[] = [];
      for (const b of await this.storage.blobs.list()) {
        if (keep.has(b.sha256) || b.storedAt > before) continue;
        await this.storage.blobs.remove(b.sha256);
        removed.push({ sha256: b.sha256, length: b.length });
      }
      return removed;
    });
  }

  /** Step 2: vendor-signed targets metadata naming the uploaded blobs; the server adds snapshot and timestamp. */
  publish(targetsBytes: Uint8Array): Promise<PublishResult> {
    return this.exclusive(async () => {
      const now = this.o.clock();
      const cur = await this.currentTargets();
      const checked = checkTargetsUpload(targetsBytes, this.root, cur ? cur.signed : null, nodeCrypto, now);
      const added: PublishResult['added'] = [];
      const rows: TargetRecord[] = [];
      for (const name of Object.keys(checked.signed.targets)) {
        const f = checked.signed.targets[name];
        if (cur && cur.signed.targets[name]) continue; // unchanged (checkTargetsUpload made sure)
        const sha = f.hashes.sha256;
        const st = await this.storage.blobs.stat(sha);
        if (!st || st.length !== f.length) {
          throw new RepositoryError('E_REPO_TARGET_MISSING', `${name}: no uploaded blob ${sha.slice(0, 16)}… of ${f.length} bytes`);
        }
        // The targets signature vouches for the bytes; the image's own signatures must agree,
        // and its manifest must say what the entry says, or a device would refuse it later.
        const image = await this.storage.blobs.readAll(sha);
        if (isBootTarget(f.custom)) {
          // A boot image: the FIT key's signature, and its signed release fields are the entry's.
          const rel = checkBootRelease(image, this.o.fitKeys ?? []);
          if (rel.board !== f.custom.board || rel.version !== f.custom.version || rel.securityCounter !== f.custom.securityCounter) {
            throw new RepositoryError('E_REPO_IMAGE_MISMATCH', `${name}: the boot image says ${rel.board} ${rel.version} counter ${rel.securityCounter}`);
          }
        } else {
          const v = verifyImage(image, { root: this.root, board: f.custom.board, now, crypto: nodeCrypto });
          const m = v.manifest;
          if (m.name !== f.custom.name || m.version !== f.custom.version || m.securityCounter !== f.custom.securityCounter) {
            throw new RepositoryError('E_REPO_IMAGE_MISMATCH', `${name}: the image says ${m.name} ${m.version} counter ${m.securityCounter}`);
          }
        }
        rows.push({ name, sha256: sha, length: f.length, board: f.custom.board, version: f.custom.version, securityCounter: f.custom.securityCounter,
          app: f.custom.name, targetsVersion: checked.signed.version, createdAt: now });
        added.push({ name, sha256: sha, length: f.length, path: consistentTargetPath(name, sha) });
      }
      const prevSnap = await this.storage.latestMetadata('snapshot');
      const prevTs = await this.storage.latestMetadata('timestamp');
      const online = await makeSnapshotAndTimestamp({
        targetsVersion: checked.signed.version, targetsBytes: checked.bytes,
        previousSnapshotVersion: prevSnap?.version ?? 0, previousTimestampVersion: prevTs?.version ?? 0,
        snapshotSigners: this.online('snapshot'), timestampSigners: this.online('timestamp'),
        nowSeconds: now, snapshotExpiresS: this.o.snapshotExpiresS, timestampExpiresS: this.o.timestampExpiresS, crypto: nodeCrypto,
      });
      const records: MetadataRecord[] = [
        { role: 'targets', version: checked.signed.version, bytes: checked.bytes, createdAt: now },
        { role: 'snapshot', version: online.snapshot.version, bytes: online.snapshot.bytes, createdAt: now },
        { role: 'timestamp', version: online.timestamp.version, bytes: online.timestamp.bytes, createdAt: now },
      ];
      this.refreshAfter = 0;
      await this.storage.commitMetadata(records, rows, {
        targets: cur ? cur.signed.version : 0, snapshot: prevSnap?.version ?? 0, timestamp: prevTs?.version ?? 0,
      });
      return { targetsVersion: checked.signed.version, snapshotVersion: online.snapshot.version, timestampVersion: online.timestamp.version, added };
    });
  }

  private async resignOnline(targets: MetadataRecord): Promise<void> {
    const now = this.o.clock();
    const prevSnap = await this.storage.latestMetadata('snapshot');
    const prevTs = await this.storage.latestMetadata('timestamp');
    const online = await makeSnapshotAndTimestamp({
      targetsVersion: targets.version, targetsBytes: targets.bytes,
      previousSnapshotVersion: prevSnap?.version ?? 0, previousTimestampVersion: prevTs?.version ?? 0,
      snapshotSigners: this.online('snapshot'), timestampSigners: this.online('timestamp'),
      nowSeconds: now, snapshotExpiresS: this.o.snapshotExpiresS, timestampExpiresS: this.o.timestampExpiresS, crypto: nodeCrypto,
    });
    this.refreshAfter = 0;
    await this.storage.commitMetadata([
      { role: 'snapshot', version: online.snapshot.version, bytes: online.snapshot.bytes, createdAt: now },
      { role: 'timestamp', version: online.timestamp.version, bytes: online.timestamp.bytes, createdAt: now },
    ], [], { snapshot: prevSnap?.version ?? 0, timestamp: prevTs?.version ?? 0 });
  }

  /**
   * Keep online metadata fresh: a new timestamp once half of the current one's lifetime has
   * passed, and a new snapshot too when the snapshot is past half of its own. Called on a
   * timer and before serving timestamp.json, so a running server never serves expired metadata.
   */
  async refresh(): Promise<boolean> {
    if (this.o.clock() < this.refreshAfter) return false;
    return this.exclusive(async () => {
      const ts = await this.storage.latestMetadata('timestamp');
      if (!ts) return false;
      const now = this.o.clock();
      const snap = (await this.storage.latestMetadata('snapshot'))!;
      const snapSigned = checkSnapshotShape(parseEnvelope(snap.bytes).signed);
      const tsSigned = checkTimestampShape(parseEnvelope(ts.bytes).signed);
      const mid = (rec: MetadataRecord, expires: string) => (rec.createdAt + parseUtc(expires)) / 2;
      if (now >= mid(snap, snapSigned.expires)) {
        const targets = (await this.storage.latestMetadata('targets'))!;
        await this.resignOnline(targets);
        return true;
      }
      if (now < mid(ts, tsSigned.expires)) {
        this.refreshAfter = Math.min(mid(snap, snapSigned.expires), mid(ts, tsSigned.expires));
        return false;
      }
      const next = await makeTimestamp({
        snapshotVersion: snap.version, snapshotBytes: snap.bytes, previousTimestampVersion: ts.version,
        timestampSigners: this.online('timestamp'), nowSeconds: now, timestampExpiresS: this.o.timestampExpiresS, crypto: nodeCrypto,
      });
      this.refreshAfter = 0;
      await this.storage.commitMetadata([{ role: 'timestamp', version: next.version, bytes: next.bytes, createdAt: now }], [],
        { timestamp: ts.version });
      return true;
    });
  }

  /** The bytes of `N.root.json`, `N.targets.json`, `N.snapshot.json` or `timestamp.json`; null if none. */
  async metadataFile(file: string): Promise<Uint8Array | null> {
    const m = META_FILE.exec(file);
    if (!m) return null;
    if (m[3]) {
      await this.refresh();
      return (await this.storage.latestMetadata('timestamp'))?.bytes ?? null;
    }
    return (await this.storage.metadata(m[2] as MetadataRole, Number(m[1])))?.bytes ?? null;
  }

  /** A target by its consistent path `board/<sha256>.name-version.simg`; null if none. */
  async targetFile(path: string): Promise<TargetRecord | null> {
    const m = /^([a-z0-9][a-z0-9-]{0,63})\/([0-9a-f]{64})\.([^/]{1,200})$/.exec(path);
    if (!m) return null;
    return this.storage.target(m[1] + '/' + m[3], m[2]);
  }
}

