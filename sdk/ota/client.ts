/**
 * The TUF client workflow (spec 1.0.x §5) as the device runs it: fetch each role over a
 * `Fetcher` with a hard size cap, feed it to the trust state machine (`client-trusted.ts`),
 * persist what was accepted, and download targets checking length and SHA-256 while the bytes
 * stream in. Callback style, no Promise: this file is bundled for the device engine (ES5).
 *
 * Persisted per device (a `MetadataStore`): root.json (the newest root reached through the
 * chain), timestamp.json, snapshot.json, targets.json. Nothing else; targets go straight to
 * the caller (the agent hands them to the boot stage). Plus `tuf-floors.json`, the versions last
 * trusted (a few dozen bytes): a store that cannot keep the files across reboots (the device's
 * 8 KiB config store) keeps this record, so rollback protection outlasts a reboot.
 */
import { bytesEqual, fromHex, toHex, utf8Decode, utf8Encode } from '../util/bytes';
import type { SignetError } from '../util/errors';
import type { ImageCrypto } from '../image/crypto';
import { TrustedMetadata } from './client-trusted';
import { asSignetError, MetadataError, OtaError } from './errors';
import { fetchBytes, once, type Callback, type Fetcher } from './fetcher';
import { verifyTrustedRoot, type RootSigned } from './metadata';
import type { MetaFile, TargetFile } from './roles';

/** The device's persistent storage for trusted metadata (a folder, a flash file, memory). */
export interface MetadataStore {
  read(name: string): Uint8Array | null;
  /** Replace the file atomically (a power cut leaves the old or the new bytes). */
  write(name: string, bytes: Uint8Array): void;
  remove(name: string): void;
}

/** Hard caps, in bytes, on what a download may be before the client stops reading. */
export interface MetadataLimits {
  root: number;
  timestamp: number;
  snapshot: number;
  targets: number;
  /** Root versions fetched in one refresh; the rest follow at the next refresh. */
  maxRootRotations: number;
}

export const DEFAULT_LIMITS: MetadataLimits = {
  root: 512 * 1024,
  timestamp: 16 * 1024,
  snapshot: 256 * 1024,
  targets: 2 * 1024 * 1024,
  maxRootRotations: 32,
};

export const STORE_FILES = { root: 'root.json', timestamp: 'timestamp.json', snapshot: 'snapshot.json', targets: 'targets.json', floors: 'tuf-floors.json' };

/**
 * The versions the device last trusted, kept where the files themselves may not survive a
 * reboot. `timestamp` is 5.4.3.1's floor, `snapshot` 5.4.3.2's (the snapshot version timestamp
 * names), `targets` 5.5.5's (the targets version snapshot names; Signet never delegates),
 * `root` the root the chain must reach again. `keys` fingerprints the timestamp and snapshot
 * keys they were accepted under: other keys (5.3.11, fast-forward recovery) drop the three floors.
 */
export interface TufFloors {
  root: number;
  keys: string;
  timestamp: number;
  snapshot: number;
  targets: number;
}

/** The timestamp and snapshot roles' keys and thresholds, as 16 hex digits. */
export function onlineKeysFingerprint(root: RootSigned, crypto: ImageCrypto): string {
  const t = root.roles.timestamp;
  const s = root.roles.snapshot;
  const text = t.threshold + ':' + t.keyids.slice().sort().join(',') + '|' + s.threshold + ':' + s.keyids.slice().sort().join(',');
  return toHex(crypto.sha256(utf8Encode(text))).substring(0, 16);
}

function isVersion(v: unknown): v is number {
  return typeof v === 'number' && v >= 0 && v <= 9007199254740991 && Math.floor(v) === v;
}

/** The persisted floors, or null when there are none or they do not parse. */
export function readFloors(store: MetadataStore): TufFloors | null {
  const b = store.read(STORE_FILES.floors);
  if (!b) return null;
  try {
    const text = utf8Decode(b);
    const f = text === null ? null : JSON.parse(text);
    if (!f || typeof f !== 'object' || typeof f.keys !== 'string' || !/^[0-9a-f]{16}$/.test(f.keys)) return null;
    if (!isVersion(f.root) || !isVersion(f.timestamp) || !isVersion(f.snapshot) || !isVersion(f.targets)) return null;
    return { root: f.root, keys: f.keys, timestamp: f.timestamp, snapshot: f.snapshot, targets: f.targets };
  } catch (_e) {
    return null;
  }
}

function floorsText(f: TufFloors): string {
  return '{"root":' + f.root + ',"keys":"' + f.keys + '","timestamp":' + f.timestamp + ',"snapshot":' + f.snapshot + ',"targets":' + f.targets + '}';
}

export interface TufClientOptions {
  fetcher: Fetcher;
  store: MetadataStore;
  crypto: ImageCrypto;
  /** The root shipped with the device (initramfs): the trust anchor of the first refresh. */
  rootBytes: Uint8Array;
  /** Base URLs ending in '/': `.../tuf/metadata/` and `.../tuf/targets/`. */
  metadataUrl: string;
  targetsUrl: string;
  /** Unix seconds, or null when the device has no trustworthy clock (then nothing is trusted). */
  now(): number | null;
  limits?: Partial<MetadataLimits>;
  /** How often a target download resumes after a cut connection. Default 5. */
  maxResumes?: number;
  log?(line: string): void;
}

const TARGET_NAME = /^[A-Za-z0-9_][A-Za-z0-9._+-]*(\/[A-Za-z0-9_][A-Za-z0-9._+-]*)*$/;

/**
 * The URL path of a target under consistent snapshots: `<dir>/<sha256>.<basename>` (TUF §5.7.3,
 * as python-tuf and tuf-js build it).
 */
export function targetPath(name: string, sha256: string): string {
  if (!TARGET_NAME.test(name) || name.length > 255) throw new OtaError('E_TARGET_NAME', 'target name ' + JSON.stringify(name) + ' is not a safe relative path');
  const slash = name.lastIndexOf('/');
  return slash < 0 ? sha256 + '.' + name : name.substring(0, slash + 1) + sha256 + '.' + name.substring(slash + 1);
}

/** The newest root the device holds: the persisted one if it verifies and is newer than the built-in. */
export function loadTrustedRoot(store: MetadataStore, builtIn: Uint8Array, crypto: ImageCrypto): { root: RootSigned; bytes: Uint8Array } {
  const base = verifyTrustedRoot(builtIn, crypto, null);
  const saved = store.read(STORE_FILES.root);
  if (saved) {
    try {
      const r = verifyTrustedRoot(saved, crypto, null);
      if (r.version > base.version) return { root: r, bytes: saved };
    } catch (_e) {
      // a damaged copy: fall back to the built-in root and walk the chain again
    }
  }
  return { root: base, bytes: builtIn };
}

export class TufClient {
  private readonly o: TufClientOptions;
  private readonly limits: MetadataLimits;
  private trusted: TrustedMetadata | null = null;
  private busy = false;
  /** This refresh's floors (persisted ones, dropped on 5.3.11), null before the root step ends. */
  private floors: TufFloors | null = null;
  /** The steps of this refresh whose metadata passed the floors (only those raise them). */
  private passed = { timestamp: false, snapshot: false };

  constructor(opts: TufClientOptions) {
    this.o = opts;
    const l = opts.limits || {};
    this.limits = {
      root: l.root || DEFAULT_LIMITS.root,
      timestamp: l.timestamp || DEFAULT_LIMITS.timestamp,
      snapshot: l.snapshot || DEFAULT_LIMITS.snapshot,
      targets: l.targets || DEFAULT_LIMITS.targets,
      maxRootRotations: l.maxRootRotations || DEFAULT_LIMITS.maxRootRotations,
    };
  }

  /** The root to trust now: after a refresh, the one it reached; before, the newest held. */
  root(): RootSigned {
    return this.trusted ? this.trusted.root : loadTrustedRoot(this.o.store, this.o.rootBytes, this.o.crypto).root;
  }

  private log(line: string): void {
    if (this.o.log) this.o.log(line);
  }

  /** Run 5.1–5.6. On success `target()` answers from freshly verified metadata. */
  refresh(callback: (err: SignetError | null) => void): void {
    const self = this;
    if (this.busy) {
      callback(new OtaError('E_CLIENT_STATE', 'a refresh is already running'));
      return;
    }
    this.busy = true;
    this.trusted = null;
    this.floors = null;
    this.passed = { timestamp: false, snapshot: false };
    let trusted: TrustedMetadata;
    const cb = once(function (err: SignetError | null) {
      self.busy = false;
      // What this refresh accepted raises the floors, failed or not (one store write at most).
      if (self.floors) self.raiseFloors(trusted, self.floors);
      self.floors = null;
      if (err) self.trusted = null;
      callback(err);
    });
    try {
      // 5.1: fix the update start time; every expiry check below uses it.
      const now = this.o.now();
      if (now === null || typeof now !== 'number' || isNaN(now)) throw new OtaError('E_CLOCK', 'the device has no trustworthy clock; TUF expiry cannot be checked');
      // 5.2: load the trusted root.
      trusted = new TrustedMetadata(loadTrustedRoot(this.o.store, this.o.rootBytes, this.o.crypto).bytes, this.o.crypto, now);
    } catch (e) {
      cb(asSignetError(e));
      return;
    }
    this.updateRoot(trusted, 0, function (err) {
      if (err) return cb(err);
      self.updateTimestamp(trusted, function (err2) {
        if (err2) return cb(err2);
        self.updateSnapshot(trusted, function (err3) {
          if (err3) return cb(err3);
          self.updateTargets(trusted, function (err4) {
            if (err4) return cb(err4);
            self.trusted = trusted;
            cb(null);
          });
        });
      });
    });
  }

  /** 5.3: update the root through the chain, one version at a time. */
  private updateRoot(trusted: TrustedMetadata, fetched: number, cb: (err: SignetError | null) => void): void {
    const self = this;
    const store = this.o.store;
    const finish = function (chainEnded: boolean): void {
      let rotated: boolean;
      try {
        // 5.3.10: freeze check on the final root.
        rotated = trusted.finishRoot();
        // 5.3.11: timestamp or snapshot keys rotated: delete their trusted metadata, so a
        // version fast-forwarded with a compromised key cannot block the repository forever.
        if (rotated) {
          self.log('ota[TUF] root=' + trusted.root.version + ' online keys rotated: trusted timestamp and snapshot deleted');
          store.remove(STORE_FILES.timestamp);
          store.remove(STORE_FILES.snapshot);
        }
        self.floors = self.loadFloors(trusted, chainEnded);
        // Earlier refreshes' metadata: the rollback references for 5.4.3 and 5.5.5.
        const names: Array<'timestamp' | 'snapshot' | 'targets'> = ['timestamp', 'snapshot', 'targets'];
        for (let i = 0; i < names.length; i++) {
          const b = store.read(STORE_FILES[names[i]]);
          if (b && !trusted.loadPersisted(names[i], b)) self.log('ota[TUF] persisted ' + names[i] + ' no longer verifies; ignored');
        }
      } catch (e) {
        return cb(asSignetError(e));
      }
      cb(null);
    };
    // 5.3.1: a cap on how many new roots one refresh fetches.
    if (fetched >= this.limits.maxRootRotations) return finish(false);
    const version = trusted.root.version + 1;
    // 5.3.2: fetch version N+1 of root, at most the root cap.
    fetchBytes(this.o.fetcher, { url: this.o.metadataUrl + version + '.root.json', maxBytes: this.limits.root }, function (err, bytes) {
      // 5.3.3: not there: the chain ends here.
      if (err && err.code === 'E_FETCH_NOT_FOUND') return finish(true);
      if (err) return cb(err);
      try {
        // 5.3.4–5.3.7: signatures of old and new root, version N+1; becomes trusted.
        trusted.updateRoot(bytes as Uint8Array);
        // 5.3.8: persist it at once, so the chain is never walked twice.
        store.write(STORE_FILES.root, bytes as Uint8Array);
      } catch (e) {
        return cb(asSignetError(e));
      }
      self.log('ota[TUF] root=' + version);
      // 5.3.9: repeat.
      self.updateRoot(trusted, fetched + 1, cb);
    });
  }

  /** 5.4: timestamp.json (never hashed by anyone: the cap is the only bound). */
  private updateTimestamp(trusted: TrustedMetadata, cb: (err: SignetError | null) => void): void {
    const self = this;
    const store = this.o.store;
    // 5.4.1: fetch timestamp.json, at most the timestamp cap.
    fetchBytes(this.o.fetcher, { url: this.o.metadataUrl + 'timestamp.json', maxBytes: this.limits.timestamp }, function (err, bytes) {
      if (err) return cb(err);
      try {
        trusted.updateTimestamp(bytes as Uint8Array); // 5.4.2–5.4.4
        self.checkFloors(trusted, 'timestamp');
        if (trusted.isFresh('timestamp')) store.write(STORE_FILES.timestamp, bytes as Uint8Array); // 5.4.5
      } catch (e) {
        return cb(asSignetError(e));
      }
      cb(null);
    });
  }

  /** 5.5: snapshot, by the version (and length, hashes) timestamp names. */
  private updateSnapshot(trusted: TrustedMetadata, cb: (err: SignetError | null) => void): void {
    const self = this;
    const store = this.o.store;
    let meta: MetaFile;
    try {
      if (trusted.usePersistedSnapshot()) {
        this.checkFloors(trusted, 'snapshot');
        return cb(null);
      }
      meta = trusted.snapshotMeta();
    } catch (e) {
      return cb(asSignetError(e));
    }
    // 5.5.1: fetch N.snapshot.json (consistent snapshots), at most its listed length or the cap.
    const cap = this.capFor(meta.length, this.limits.snapshot, 'snapshot');
    if (typeof cap !== 'number') return cb(cap);
    fetchBytes(this.o.fetcher, { url: this.o.metadataUrl + meta.version + '.snapshot.json', maxBytes: cap }, function (err, bytes) {
      if (err) return cb(err);
      try {
        trusted.updateSnapshot(bytes as Uint8Array); // 5.5.2–5.5.6
        self.checkFloors(trusted, 'snapshot');
        store.write(STORE_FILES.snapshot, bytes as Uint8Array); // 5.5.7
      } catch (e) {
        return cb(asSignetError(e));
      }
      cb(null);
    });
  }

  /** 5.6: top-level targets, by the version (and length, hashes) snapshot names. */
  private updateTargets(trusted: TrustedMetadata, cb: (err: SignetError | null) => void): void {
    const store = this.o.store;
    let meta: MetaFile;
    try {
      if (trusted.usePersistedTargets()) return cb(null);
      meta = trusted.targetsMeta();
    } catch (e) {
      return cb(asSignetError(e));
    }
    // 5.6.1: fetch N.targets.json, at most its listed length or the cap.
    const cap = this.capFor(meta.length, this.limits.targets, 'targets');
    if (typeof cap !== 'number') return cb(cap);
    fetchBytes(this.o.fetcher, { url: this.o.metadataUrl + meta.version + '.targets.json', maxBytes: cap }, function (err, bytes) {
      if (err) return cb(err);
      try {
        trusted.updateTargets(bytes as Uint8Array); // 5.6.2–5.6.5
        store.write(STORE_FILES.targets, bytes as Uint8Array); // 5.6.6
      } catch (e) {
        return cb(asSignetError(e));
      }
      cb(null);
    });
  }

  /**
   * The persisted floors for this refresh: dropped but the root's when the online keys are not
   * the ones they were accepted under (5.3.11). A chain that ended (no next root) below the
   * root floor is a rollback: a mirror hides the newer roots.
   */
  private loadFloors(trusted: TrustedMetadata, chainEnded: boolean): TufFloors {
    const keys = onlineKeysFingerprint(trusted.root, this.o.crypto);
    const saved = readFloors(this.o.store);
    if (this.o.store.read(STORE_FILES.floors) && !saved) this.log('ota[TUF] persisted floors do not parse; ignored');
    const f: TufFloors = { root: saved ? saved.root : 0, keys: keys, timestamp: 0, snapshot: 0, targets: 0 };
    // Fingerprints, not `rotated`: on a device each boot walks the chain from the boot stage's
    // root, so `rotated` can be true again for floors already taken under the new keys.
    if (saved && saved.keys === keys) {
      f.timestamp = saved.timestamp;
      f.snapshot = saved.snapshot;
      f.targets = saved.targets;
    } else if (saved && (saved.timestamp || saved.snapshot || saved.targets)) {
      this.log('ota[TUF] root=' + trusted.root.version + ' online keys rotated: timestamp, snapshot and targets floors dropped');
    }
    if (chainEnded && trusted.root.version < f.root) {
      throw new MetadataError('E_META_ROLLBACK', 'the root chain ends at version ' + trusted.root.version + ', older than trusted version ' + f.root);
    }
    return f;
  }

  /** 5.4.3 and 5.5.5 against the persisted floors (the persisted files may be gone: a reboot). */
  private checkFloors(trusted: TrustedMetadata, step: 'timestamp' | 'snapshot'): void {
    const f = this.floors as TufFloors;
    if (step === 'timestamp') {
      const ts = trusted.timestamp as NonNullable<TrustedMetadata['timestamp']>;
      if (ts.version < f.timestamp) throw new MetadataError('E_META_ROLLBACK', 'timestamp version ' + ts.version + ' is older than trusted version ' + f.timestamp);
      const sv = ts.meta['snapshot.json'].version;
      if (sv < f.snapshot) throw new MetadataError('E_META_ROLLBACK', 'timestamp names snapshot version ' + sv + ', older than trusted version ' + f.snapshot);
    } else {
      const snap = trusted.snapshot as NonNullable<TrustedMetadata['snapshot']>;
      const t = snap.meta['targets.json'];
      if (!t && f.targets) throw new MetadataError('E_META_ROLLBACK', 'snapshot version ' + snap.version + ' drops targets.json, which trusted snapshot lists');
      if (t && t.version < f.targets) throw new MetadataError('E_META_ROLLBACK', 'snapshot names targets.json version ' + t.version + ', older than trusted version ' + f.targets);
    }
    this.passed[step] = true;
  }

  /** Raise the floors to what this refresh accepted; write them only when one rose. */
  private raiseFloors(trusted: TrustedMetadata, f: TufFloors): void {
    const next: TufFloors = { root: Math.max(f.root, trusted.root.version), keys: f.keys, timestamp: f.timestamp, snapshot: f.snapshot, targets: f.targets };
    const ts = trusted.timestamp;
    // Only what passed this refresh's checks (a rolled-back timestamp is refused before it counts).
    if (ts && this.passed.timestamp) {
      next.timestamp = Math.max(next.timestamp, ts.version);
      next.snapshot = Math.max(next.snapshot, ts.meta['snapshot.json'].version);
    }
    const snap = trusted.snapshot;
    if (snap && this.passed.snapshot && snap.meta['targets.json']) {
      next.targets = Math.max(next.targets, snap.meta['targets.json'].version);
    }
    const saved = readFloors(this.o.store);
    if (saved && floorsText(saved) === floorsText(next)) return;
    try {
      this.o.store.write(STORE_FILES.floors, utf8Encode(floorsText(next)));
    } catch (e) {
      this.log('ota[TUF] floors not persisted: ' + String(e && (e as Error).message));
    }
  }

  /** A listed length is the download's cap; one beyond the device's cap is refused unread. */
  private capFor(length: number | undefined, cap: number, role: string): number | SignetError {
    if (length === undefined) return cap;
    if (length > cap) return new OtaError('E_FETCH_TOO_LARGE', role + ' metadata is listed at ' + length + ' bytes, over the device cap of ' + cap);
    return length;
  }

  /** 5.7.1: a target's signed entry, after a successful refresh. */
  target(name: string): TargetFile | null {
    if (!this.trusted) throw new OtaError('E_CLIENT_STATE', 'target lookup before a successful refresh');
    return this.trusted.target(name);
  }

  /**
   * 5.7.2–5.7.3: download a target: the signed length is the hard cap, SHA-256 is computed as
   * bytes arrive, a cut connection resumes with Range from the last byte received.
   */
  downloadTarget(name: string, info: TargetFile, callback: Callback<Uint8Array>): void {
    const self = this;
    const cb = once(callback);
    let url: string;
    const want = fromHex(info.hashes.sha256);
    if (!this.trusted) return cb(new OtaError('E_CLIENT_STATE', 'target download before a successful refresh'));
    try {
      url = this.o.targetsUrl + targetPath(name, info.hashes.sha256);
    } catch (e) {
      return cb(asSignetError(e));
    }
    if (!want) return cb(new OtaError('E_TARGET_HASH', 'target ' + name + ' has no usable sha256'));
    const out = new Uint8Array(info.length);
    const hash = this.o.crypto.sha256Stream();
    const maxResumes = this.o.maxResumes === undefined ? 5 : this.o.maxResumes;
    let got = 0;
    let resumes = 0;
    const attempt = function (): void {
      let stopped: SignetError | null = null;
      try {
        self.o.fetcher.fetch({ url: url, maxBytes: info.length, offset: got }, {
          data: function (chunk: Uint8Array) {
            if (stopped) return false;
            if (got + chunk.length > info.length) {
              // Endless data: never more than the signed length.
              stopped = new OtaError('E_FETCH_TOO_LARGE', 'target ' + name + ' is longer than its signed length ' + info.length);
              return false;
            }
            out.set(chunk, got);
            got += chunk.length;
            hash.update(chunk);
            return true;
          },
          end: function (err: SignetError | null) {
            if (stopped) return cb(stopped);
            if (err && err.code === 'E_FETCH_CUT' && got < info.length && resumes < maxResumes) {
              resumes++;
              self.log('ota[RESUME] target=' + name + ' from=' + got + ' attempt=' + resumes);
              return attempt();
            }
            if (err) return cb(err);
            // 5.7.2: the signed length and SHA-256.
            if (got !== info.length) return cb(new OtaError('E_TARGET_LENGTH', 'target ' + name + ' ended at ' + got + ' bytes, its signed length is ' + info.length));
            if (!bytesEqual(hash.digest(), want)) return cb(new OtaError('E_TARGET_HASH', 'target ' + name + ' does not match its signed sha256'));
            cb(null, out);
          },
        });
      } catch (e) {
        cb(asSignetError(e));
      }
    };
    attempt();
  }
}
