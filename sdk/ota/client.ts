/**
 * The TUF client workflow (spec 1.0.x §5) as the device runs it: fetch each role over a
 * `Fetcher` with a hard size cap, feed it to the trust state machine (`client-trusted.ts`),
 * persist what was accepted, and download targets checking length and SHA-256 while the bytes
 * stream in. Callback style, no Promise: this file is bundled for the device engine (ES5).
 *
 * Persisted per device (a `MetadataStore`): root.json (the newest root reached through the
 * chain), timestamp.json, snapshot.json, targets.json. Nothing else; targets go straight to
 * the caller (the agent hands them to the boot stage).
 */
import { bytesEqual, fromHex } from '../util/bytes';
import type { SignetError } from '../util/errors';
import type { ImageCrypto } from '../image/crypto';
import { TrustedMetadata } from './client-trusted';
import { asSignetError, OtaError } from './errors';
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

export const STORE_FILES = { root: 'root.json', timestamp: 'timestamp.json', snapshot: 'snapshot.json', targets: 'targets.json' };

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
    const cb = once(function (err: SignetError | null) {
      self.busy = false;
      if (err) self.trusted = null;
      callback(err);
    });
    let trusted: TrustedMetadata;
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
    const finish = function (): void {
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
    if (fetched >= this.limits.maxRootRotations) return finish();
    const version = trusted.root.version + 1;
    // 5.3.2: fetch version N+1 of root, at most the root cap.
    fetchBytes(this.o.fetcher, { url: this.o.metadataUrl + version + '.root.json', maxBytes: this.limits.root }, function (err, bytes) {
      // 5.3.3: not there: the chain ends here.
      if (err && err.code === 'E_FETCH_NOT_FOUND') return finish();
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
    const store = this.o.store;
    // 5.4.1: fetch timestamp.json, at most the timestamp cap.
    fetchBytes(this.o.fetcher, { url: this.o.metadataUrl + 'timestamp.json', maxBytes: this.limits.timestamp }, function (err, bytes) {
      if (err) return cb(err);
      try {
        trusted.updateTimestamp(bytes as Uint8Array); // 5.4.2–5.4.4
        if (trusted.isFresh('timestamp')) store.write(STORE_FILES.timestamp, bytes as Uint8Array); // 5.4.5
      } catch (e) {
        return cb(asSignetError(e));
      }
      cb(null);
    });
  }

  /** 5.5: snapshot, by the version (and length, hashes) timestamp names. */
  private updateSnapshot(trusted: TrustedMetadata, cb: (err: SignetError | null) => void): void {
    const store = this.o.store;
    let meta: MetaFile;
    try {
      if (trusted.usePersistedSnapshot()) return cb(null);
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
