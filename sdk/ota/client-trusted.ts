/**
 * The trusted metadata of one TUF refresh, as a state machine that refuses steps out of order:
 *
 *   root (5.3) → timestamp (5.4) → snapshot (5.5) → targets (5.6) → ready (5.7 lookups)
 *
 * Pure and synchronous (no I/O, no clock reads, ES5-safe): `client.ts` fetches bytes and feeds
 * them in; every check names the spec step it enforces (TUF spec 1.0.x, §5 "Detailed client
 * workflow"). Metadata the device persisted in an earlier refresh is loaded as the *reference*
 * for rollback checks (signature checked, expiry not: an expired reference still proves which
 * versions the device has seen), never as a substitute for a step's checks.
 */
import { bytesEqual, fromHex } from '../util/bytes';
import type { ImageCrypto } from '../image/crypto';
import { MetadataError, OtaError } from './errors';
import { checkThreshold, isExpired, parseEnvelope, roleKeysChanged, verifyRootUpdate, verifyTrustedRoot, type RootSigned } from './metadata';
import {
  checkSnapshotShape, checkTargetsShape, checkTimestampShape,
  type MetaFile, type SnapshotSigned, type TargetFile, type TargetsSigned, type TimestampSigned,
} from './roles';

export type TrustStep = 'root' | 'timestamp' | 'snapshot' | 'targets' | 'ready';

/** Is `bytes` the file `meta` describes (length and sha256, where given)? E_META_MISMATCH if not. */
export function checkAgainstMeta(bytes: Uint8Array, meta: MetaFile, what: string, crypto: ImageCrypto): void {
  if (meta.length !== undefined && bytes.length !== meta.length) {
    throw new MetadataError('E_META_MISMATCH', what + ' is ' + bytes.length + ' bytes, the referring metadata says ' + meta.length);
  }
  if (meta.hashes) {
    const want = fromHex(meta.hashes.sha256);
    if (!want || !bytesEqual(crypto.sha256(bytes), want)) {
      throw new MetadataError('E_META_MISMATCH', what + ' does not have the sha256 the referring metadata says');
    }
  }
}

export class TrustedMetadata {
  private readonly crypto: ImageCrypto;
  /** 5.1: the time fixed at the start of the update; every expiry check uses it. */
  private readonly now: number;
  private step: TrustStep = 'root';
  private rootSigned: RootSigned;
  private readonly startRoot: RootSigned;
  private ts: TimestampSigned | null = null;
  private snap: SnapshotSigned | null = null;
  private snapBytes: Uint8Array | null = null;
  private tgt: TargetsSigned | null = null;
  private tgtBytes: Uint8Array | null = null;
  /** Set when a step accepted new bytes the caller must persist. */
  private fresh: { timestamp: boolean; snapshot: boolean; targets: boolean } = { timestamp: false, snapshot: false, targets: false };

  /** 5.2: load the trusted root (self-signed; its expiry is checked after the chain, 5.3.10). */
  constructor(rootBytes: Uint8Array, crypto: ImageCrypto, nowSeconds: number) {
    this.crypto = crypto;
    this.now = nowSeconds;
    this.rootSigned = verifyTrustedRoot(rootBytes, crypto, null);
    this.startRoot = this.rootSigned;
  }

  get root(): RootSigned {
    return this.rootSigned;
  }

  get timestamp(): TimestampSigned | null {
    return this.ts;
  }

  get snapshot(): SnapshotSigned | null {
    return this.snap;
  }

  get targets(): TargetsSigned | null {
    return this.tgt;
  }

  get state(): TrustStep {
    return this.step;
  }

  isFresh(role: 'timestamp' | 'snapshot' | 'targets'): boolean {
    return this.fresh[role];
  }

  private expect(step: TrustStep, what: string): void {
    if (this.step !== step) throw new OtaError('E_CLIENT_STATE', what + ' while the refresh is at step "' + this.step + '"');
  }

  /** 5.3.4–5.3.7: the next root in the chain, signed by the old and the new threshold, version N+1. */
  updateRoot(bytes: Uint8Array): RootSigned {
    this.expect('root', 'root update');
    // 5.3.6: an intermediate root's expiry does not matter yet.
    this.rootSigned = verifyRootUpdate(this.rootSigned, bytes, this.crypto);
    return this.rootSigned;
  }

  /**
   * 5.3.10: the final root must not be expired (freeze attack).
   * 5.3.11: returns true when timestamp or snapshot keys changed, so the caller deletes the
   * persisted timestamp and snapshot (fast-forward attack recovery).
   */
  finishRoot(): boolean {
    this.expect('root', 'finishing the root chain');
    if (isExpired(this.rootSigned.expires, this.now)) {
      throw new MetadataError('E_META_EXPIRED', 'root metadata version ' + this.rootSigned.version + ' expired at ' + this.rootSigned.expires);
    }
    this.step = 'timestamp';
    return roleKeysChanged(this.startRoot, this.rootSigned, 'timestamp') || roleKeysChanged(this.startRoot, this.rootSigned, 'snapshot');
  }

  /**
   * Persisted metadata from an earlier refresh, as the rollback reference. Returns false (and
   * keeps nothing) if it no longer verifies under the current root, e.g. after key rotation.
   */
  loadPersisted(role: 'timestamp' | 'snapshot' | 'targets', bytes: Uint8Array): boolean {
    this.expect('timestamp', 'loading persisted ' + role);
    try {
      const env = parseEnvelope(bytes);
      checkThreshold(env, this.rootSigned, role, this.crypto);
      if (role === 'timestamp') this.ts = checkTimestampShape(env.signed);
      else if (role === 'snapshot') {
        this.snap = checkSnapshotShape(env.signed);
        this.snapBytes = bytes;
      } else {
        this.tgt = checkTargetsShape(env.signed);
        this.tgtBytes = bytes;
      }
      return true;
    } catch (_e) {
      return false;
    }
  }

  /** 5.4: new timestamp. */
  updateTimestamp(bytes: Uint8Array): void {
    this.expect('timestamp', 'timestamp update');
    const env = parseEnvelope(bytes);
    const next = checkTimestampShape(env.signed);
    // 5.4.2: signed by a threshold of the timestamp keys of the trusted root.
    checkThreshold(env, this.rootSigned, 'timestamp', this.crypto);
    const prev = this.ts;
    let use = next;
    if (prev) {
      // 5.4.3.1: check for a rollback of the timestamp version.
      if (next.version < prev.version) {
        throw new MetadataError('E_META_ROLLBACK', 'timestamp version ' + next.version + ' is older than trusted version ' + prev.version);
      }
      // 5.4.3.2: check for a rollback of the snapshot version it names.
      if (next.meta['snapshot.json'].version < prev.meta['snapshot.json'].version) {
        throw new MetadataError('E_META_ROLLBACK', 'timestamp names snapshot version ' + next.meta['snapshot.json'].version +
          ', older than trusted version ' + prev.meta['snapshot.json'].version);
      }
      // Same version: nothing new; keep what is trusted (and persisted).
      if (next.version === prev.version) use = prev;
    }
    // 5.4.4: check for a freeze attack.
    if (isExpired(use.expires, this.now)) {
      throw new MetadataError('E_META_EXPIRED', 'timestamp metadata version ' + use.version + ' expired at ' + use.expires);
    }
    this.fresh.timestamp = use !== prev;
    this.ts = use;
    this.step = 'snapshot';
  }

  /** What timestamp says snapshot.json must be (version; length and hashes when given). */
  snapshotMeta(): MetaFile {
    this.expect('snapshot', 'asking for snapshot info');
    return (this.ts as TimestampSigned).meta['snapshot.json'];
  }

  /**
   * Use the persisted snapshot when it is exactly the one the new timestamp names: no
   * download, the same checks (5.5.2, 5.5.4, 5.5.6). False when it is not.
   */
  usePersistedSnapshot(): boolean {
    this.expect('snapshot', 'persisted snapshot');
    const meta = this.snapshotMeta();
    if (!this.snap || !this.snapBytes || this.snap.version !== meta.version) return false;
    try {
      checkAgainstMeta(this.snapBytes, meta, 'snapshot.json', this.crypto);
    } catch (_e) {
      return false;
    }
    this.finishSnapshot(this.snap, false);
    return true;
  }

  /** 5.5: new snapshot. */
  updateSnapshot(bytes: Uint8Array): void {
    const meta = this.snapshotMeta();
    // 5.5.2: length and hashes from timestamp, when it lists them.
    checkAgainstMeta(bytes, meta, 'snapshot.json', this.crypto);
    const env = parseEnvelope(bytes);
    const next = checkSnapshotShape(env.signed);
    // 5.5.3: signed by a threshold of the snapshot keys of the trusted root.
    checkThreshold(env, this.rootSigned, 'snapshot', this.crypto);
    const prev = this.snap;
    if (prev) {
      // 5.5.5: check for a rollback: every targets file the trusted snapshot lists is still
      // listed, with a version at least as high.
      const names = Object.keys(prev.meta);
      for (let i = 0; i < names.length; i++) {
        const now = next.meta[names[i]];
        if (!now) throw new MetadataError('E_META_ROLLBACK', 'snapshot version ' + next.version + ' drops ' + names[i] + ', which trusted snapshot ' + prev.version + ' lists');
        if (now.version < prev.meta[names[i]].version) {
          throw new MetadataError('E_META_ROLLBACK', 'snapshot names ' + names[i] + ' version ' + now.version + ', older than trusted version ' + prev.meta[names[i]].version);
        }
      }
    }
    this.snapBytes = bytes;
    this.finishSnapshot(next, true);
  }

  private finishSnapshot(next: SnapshotSigned, fresh: boolean): void {
    const meta = this.snapshotMeta();
    // 5.5.4: the version timestamp names (mix-and-match).
    if (next.version !== meta.version) {
      throw new MetadataError('E_META_MISMATCH', 'snapshot version ' + next.version + ' is not the version ' + meta.version + ' that timestamp names');
    }
    // 5.5.6: check for a freeze attack.
    if (isExpired(next.expires, this.now)) {
      throw new MetadataError('E_META_EXPIRED', 'snapshot metadata version ' + next.version + ' expired at ' + next.expires);
    }
    this.snap = next;
    this.fresh.snapshot = fresh;
    this.step = 'targets';
  }

  /** What snapshot says targets.json must be. */
  targetsMeta(): MetaFile {
    this.expect('targets', 'asking for targets info');
    return (this.snap as SnapshotSigned).meta['targets.json'];
  }

  usePersistedTargets(): boolean {
    this.expect('targets', 'persisted targets');
    const meta = this.targetsMeta();
    if (!this.tgt || !this.tgtBytes || this.tgt.version !== meta.version) return false;
    try {
      checkAgainstMeta(this.tgtBytes, meta, 'targets.json', this.crypto);
    } catch (_e) {
      return false;
    }
    this.finishTargets(this.tgt, false);
    return true;
  }

  /** 5.6: new top-level targets. */
  updateTargets(bytes: Uint8Array): void {
    const meta = this.targetsMeta();
    // 5.6.2: length and hashes from snapshot, when it lists them.
    checkAgainstMeta(bytes, meta, 'targets.json', this.crypto);
    const env = parseEnvelope(bytes);
    const next = checkTargetsShape(env.signed);
    // 5.6.3: signed by a threshold of the targets keys of the trusted root.
    checkThreshold(env, this.rootSigned, 'targets', this.crypto);
    this.tgtBytes = bytes;
    this.finishTargets(next, true);
  }

  private finishTargets(next: TargetsSigned, fresh: boolean): void {
    const meta = this.targetsMeta();
    // 5.6.4: the version snapshot names (mix-and-match, and targets rollback via 5.5.5).
    if (next.version !== meta.version) {
      throw new MetadataError('E_META_MISMATCH', 'targets version ' + next.version + ' is not the version ' + meta.version + ' that snapshot names');
    }
    // 5.6.5: check for a freeze attack.
    if (isExpired(next.expires, this.now)) {
      throw new MetadataError('E_META_EXPIRED', 'targets metadata version ' + next.version + ' expired at ' + next.expires);
    }
    this.tgt = next;
    this.fresh.targets = fresh;
    this.step = 'ready';
  }

  /** 5.7.1: a target's signed entry (top-level targets only: Signet never delegates). */
  target(name: string): TargetFile | null {
    this.expect('ready', 'target lookup');
    const t = this.tgt as TargetsSigned;
    return Object.prototype.hasOwnProperty.call(t.targets, name) ? t.targets[name] : null;
  }
}
