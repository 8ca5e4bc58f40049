/**
 * The device's update agent (docs/ota-agent.md, contract in docs/ota-protocol.md §5):
 *
 *   check in → offer → TUF refresh (5.3–5.6) → refuse another board / a counter below the
 *   floor / a target larger than the slot, before any download → download (5.7: length and
 *   SHA-256 while streaming, Range resume) → verifyImage → stageImage → report `staged`
 *   … reboot … → `booted-trial` → the app's confirm() → `confirmed` (or `failed` + code).
 *
 * An offer is advice, not trust: only signed metadata and the image verifier decide. Nothing
 * reaches the boot stage's install API until every check has passed, and the install API
 * verifies again before its first write, so a failure anywhere leaves the inactive slot as it was.
 *
 * ES5, callback style, all I/O behind interfaces (fetcher, store, clock, install API): the same
 * code runs on Node for simulated devices and bundled for Duktape on the device.
 */
import { utf8Encode } from '../util/bytes';
import { parseStrictJsonBytes } from '../util/strict-json';
import type { SignetError } from '../util/errors';
import type { ImageCrypto } from '../image/crypto';
import { verifyImage, type VerifiedImage } from '../image/verify';
import { TufClient, type MetadataLimits, type MetadataStore } from './client';
import { asSignetError, OtaError } from './errors';
import { fetchBytes, once, type Callback, type Fetcher } from './fetcher';
import type { RootSigned } from './metadata';
import type { TargetCustom, TargetFile } from './roles';

export type SlotName = 'a' | 'b';
export type ReportStatus = 'downloading' | 'staged' | 'booted-trial' | 'confirmed' | 'failed';

/** What the device is running, from the boot stage. */
export interface DeviceStatus {
  board: string;
  version: string;
  securityCounter: number;
  /** The slot running now. */
  slot: SlotName;
  /** The boot state's security floor: images below it are refused. */
  securityFloor: number;
}

/** The boot stage's install API (`BootStage.stageImage` satisfies it). */
export interface InstallApi {
  stageImage(bytes: Uint8Array): VerifiedImage;
  /**
   * Root rotation (`BootStage.installRootChain`, `trustedRoot().version`): the boot stage
   * verifies images with its own root — the compiled one plus the chain it stored — so a root
   * the agent reached must be installed there before an image signed under it is staged.
   */
  rootVersion?(): number;
  installRoots?(links: Uint8Array[]): number;
}

/** The server's advice (docs/ota-protocol.md §2 `/api/v1/checkin`). */
export interface Offer {
  target: string;
  version: string;
  securityCounter: number;
  length: number;
  sha256: string;
  rollout: string;
}

/** An update written to the inactive slot and waiting for (or in) its trial boot. Persisted. */
export interface PendingInstall {
  rollout: string;
  target: string;
  version: string;
  securityCounter: number;
  slot: SlotName;
  status: 'staged' | 'booted-trial';
}

export interface ReportBody {
  rollout: string;
  target: string;
  status: ReportStatus;
  code?: string;
}

export interface UpdateResult {
  /** none: no offer; current: the offer is what runs; pending: an install awaits reboot/confirm; staged: a trial is armed. */
  outcome: 'none' | 'current' | 'pending' | 'staged';
  offer?: Offer;
  /** For `staged`: the slot written. */
  slot?: SlotName;
  /** The boot image offered in the same check-in, if any (sdk/ota/boot-target.ts). */
  boot?: { outcome: 'current' | 'staged'; offer: Offer; slot?: SlotName };
}

/**
 * Boot images (A/B boot slots): the check-in also says which boot image runs, and a boot offer
 * in its answer is handled after the app's part of the cycle. `BootTargetAgent` implements it.
 */
export interface AgentBootHook {
  checkin(): Record<string, unknown> | null;
  afterCheckin(answer: Uint8Array, result: UpdateResult, cb: Callback<UpdateResult>): void;
}

/** What the boot stage decided this boot (BootChoice + state). */
export interface BootReport {
  slot: SlotName;
  trial: boolean;
  /** The boot state's lastError after this boot (why a trial fell back), or ''. */
  lastError: string;
}

export interface AgentOptions {
  /** The update server, e.g. `https://ota.example.com:8443` (no trailing slash needed). */
  serverUrl: string;
  fetcher: Fetcher;
  /** Trusted metadata and the agent's own small records live here. */
  store: MetadataStore;
  crypto: ImageCrypto;
  /** The root shipped with the device. */
  rootBytes: Uint8Array;
  now(): number | null;
  device(): DeviceStatus;
  install: InstallApi;
  /** The inactive slot's size: larger targets are refused before download. */
  maxImageBytes: number;
  limits?: Partial<MetadataLimits>;
  maxResumes?: number;
  /** Cap on an API answer (check-in, report). Default 64 KiB. */
  maxApiBytes?: number;
  /**
   * Mirrors of the TUF repository (`signet mirror sync` folders behind any static web server or
   * CDN), tried in order: metadata under `<mirror>/metadata/`, targets under `<mirror>/targets/`.
   * They are untrusted: a stale, tampered or unreachable one fails a TUF check (or the fetch)
   * and the next is tried. With mirrors the API sees only check-ins and reports.
   */
  mirrors?: string[];
  /** After the last mirror, try the server's own `/tuf/` too (default false; always so without mirrors). */
  serverFallback?: boolean;
  /** Boot-image updates on a device with A/B boot slots (sdk/ota/boot-target.ts). */
  boot?: AgentBootHook;
  log?(line: string): void;
}

export const PENDING_FILE = 'agent-pending.json';
export const REPORTS_FILE = 'agent-reports.json';
const DEFAULT_API_BYTES = 64 * 1024;

/**
 * Failures that say nothing about the release (the network, the server's API, the clock): not
 * reported as `failed`, so a flaky link cannot mark a release bad or bar the device from it.
 */
export function isTransient(code: string): boolean {
  return code.indexOf('E_FETCH_') === 0 || code === 'E_API' || code === 'E_CLOCK' || code === 'E_CLIENT_STATE' || code === 'E_STAGE_BUSY';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.prototype.toString.call(v) !== '[object Array]';
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && v >= 0 && Math.floor(v) === v;
}

/** The check-in answer: `{ offer: null | Offer }`, fail closed on anything else. */
export function parseOffer(bytes: Uint8Array): Offer | null {
  const v = parseStrictJsonBytes(bytes);
  if (!isObject(v) || !('offer' in v)) throw new OtaError('E_API', 'check-in answer is not { offer }');
  const o = v.offer;
  if (o === null) return null;
  if (!isObject(o) || typeof o.target !== 'string' || typeof o.version !== 'string' || !isCount(o.securityCounter) ||
      !isCount(o.length) || typeof o.sha256 !== 'string' || typeof o.rollout !== 'string') {
    throw new OtaError('E_API', 'check-in offer lacks target, version, securityCounter, length, sha256 or rollout');
  }
  return { target: o.target, version: o.version, securityCounter: o.securityCounter, length: o.length, sha256: o.sha256, rollout: o.rollout };
}

/** A root link fetched for the boot stage: the same cap as the TUF client's for root. */
const ROOT_LINK_MAX = 512 * 1024;

const SOURCE_URL = /^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/;

/**
 * The TUF sources in the order tried: each mirror, then the server's `/tuf` (when there are no
 * mirrors, or `serverFallback`). A source is a base URL; `metadata/` and `targets/` lie under it.
 */
export function tufSources(serverUrl: string, mirrors: string[] | undefined, serverFallback: boolean | undefined): string[] {
  const out: string[] = [];
  const list = mirrors || [];
  for (let i = 0; i < list.length; i++) {
    if (typeof list[i] !== 'string' || !SOURCE_URL.test(list[i])) {
      throw new OtaError('E_AGENT_MIRROR', 'mirror ' + JSON.stringify(list[i]) + ' is not an http(s) URL without query or fragment');
    }
    out.push(list[i].replace(/\/+$/, ''));
  }
  if (out.length === 0 || serverFallback) out.push(serverUrl.replace(/\/+$/, '') + '/tuf');
  return out;
}

/**
 * Failures a different copy of the repository may not have: the metadata did not fetch or
 * verify (stale, expired, rolled back, tampered), the offered target is not in this copy's
 * signed targets (a mirror behind the server), or its bytes did not fetch or match. Policy
 * refusals from metadata that verified, and the image verifier's, are the same everywhere.
 */
function sourceFault(code: string): boolean {
  return code !== 'E_CLOCK' && code !== 'E_CLIENT_STATE' && code !== 'E_STAGE_BUSY';
}

export class OtaAgent {
  private readonly o: AgentOptions;
  /** Base URLs of the TUF repository copies, in the order tried (`tufSources`). */
  readonly sources: string[];
  private readonly clients: TufClient[] = [];
  /** The source of the last refresh (its client holds the trusted metadata). */
  private active = 0;
  private busy = false;

  constructor(opts: AgentOptions) {
    this.o = opts;
    this.sources = tufSources(opts.serverUrl, opts.mirrors, opts.serverFallback);
    // One client per source over the one store: trust (root, rollback references) is shared,
    // so a copy older than anything seen through another is refused as a rollback.
    for (let i = 0; i < this.sources.length; i++) {
      this.clients.push(new TufClient({
        fetcher: opts.fetcher,
        store: opts.store,
        crypto: opts.crypto,
        rootBytes: opts.rootBytes,
        metadataUrl: this.sources[i] + '/metadata/',
        targetsUrl: this.sources[i] + '/targets/',
        now: opts.now,
        limits: opts.limits,
        maxResumes: opts.maxResumes,
        log: opts.log,
      }));
    }
  }

  /** The TUF client of the source used last (the first before any cycle). */
  get tuf(): TufClient {
    return this.clients[this.active];
  }

  private log(line: string): void {
    if (this.o.log) this.o.log(line);
  }

  private api(path: string): string {
    return this.o.serverUrl.replace(/\/+$/, '') + path;
  }

  /** The root the device trusts now (the newest reached through the chain). */
  trustedRoot(): RootSigned {
    return this.tuf.root();
  }

  pending(): PendingInstall | null {
    const v = parseStrictJsonBytes(this.o.store.read(PENDING_FILE));
    if (!isObject(v) || typeof v.rollout !== 'string' || typeof v.target !== 'string' || (v.slot !== 'a' && v.slot !== 'b')) return null;
    return v as unknown as PendingInstall;
  }

  private setPending(p: PendingInstall | null): void {
    if (p) this.o.store.write(PENDING_FILE, utf8Encode(JSON.stringify(p)));
    else this.o.store.remove(PENDING_FILE);
  }

  /** Reports not yet delivered, oldest first. */
  queuedReports(): ReportBody[] {
    const v = parseStrictJsonBytes(this.o.store.read(REPORTS_FILE));
    return Object.prototype.toString.call(v) === '[object Array]' ? (v as ReportBody[]) : [];
  }

  private postJson(path: string, body: unknown, cb: Callback<Uint8Array>): void {
    fetchBytes(this.o.fetcher, {
      url: this.api(path),
      method: 'POST',
      body: utf8Encode(JSON.stringify(body)),
      maxBytes: this.o.maxApiBytes || DEFAULT_API_BYTES,
    }, cb);
  }

  /**
   * Queue a report (persisted first, so a reboot cannot lose a `failed`) and deliver the queue
   * in order. A delivery failure keeps the rest for the next attempt and is not an error.
   */
  report(body: ReportBody, callback: (err: SignetError | null) => void): void {
    const q = this.queuedReports();
    q.push(body);
    this.o.store.write(REPORTS_FILE, utf8Encode(JSON.stringify(q)));
    this.log('ota[REPORT] status=' + body.status + ' target=' + body.target + (body.code ? ' code=' + body.code : ''));
    this.flushReports(callback);
  }

  flushReports(callback: (err: SignetError | null) => void): void {
    const self = this;
    const cb = once(callback);
    const q = this.queuedReports();
    if (q.length === 0) return cb(null);
    this.postJson('/api/v1/report', q[0], function (err) {
      // Refused (4xx): the server will never take this report; drop it rather than block the rest.
      const refused = err && (err.code === 'E_FETCH_REFUSED' || err.code === 'E_FETCH_NOT_FOUND');
      if (err && !refused) {
        self.log('ota[REPORT] deferred reason=' + err.code);
        return cb(null);
      }
      if (err) self.log('ota[REPORT] dropped status=' + q[0].status + ' reason=' + err.code);
      const rest = self.queuedReports().slice(1);
      if (rest.length === 0) self.o.store.remove(REPORTS_FILE);
      else self.o.store.write(REPORTS_FILE, utf8Encode(JSON.stringify(rest)));
      self.flushReports(cb);
    });
  }

  /** One update cycle. Errors are typed; after an offer, non-transient ones are reported as `failed`. */
  checkForUpdate(callback: Callback<UpdateResult>): void {
    const self = this;
    if (this.busy) return callback(new OtaError('E_CLIENT_STATE', 'an update cycle is already running'));
    this.busy = true;
    const cb = once(function (err: SignetError | null, r?: UpdateResult) {
      self.busy = false;
      callback(err, r);
    });
    this.flushReports(function () {
      const pending = self.pending();
      let dev: DeviceStatus;
      try {
        dev = self.o.device();
      } catch (e) {
        return cb(asSignetError(e));
      }
      if (pending) {
        self.log('ota[PENDING] target=' + pending.target + ' status=' + pending.status);
        return cb(null, { outcome: 'pending' });
      }
      const checkin: Record<string, unknown> = {
        board: dev.board, version: dev.version, securityCounter: dev.securityCounter, slot: dev.slot,
      };
      const bootHook = self.o.boot;
      const bootFields = bootHook ? bootHook.checkin() : null;
      if (bootFields) checkin.boot = bootFields;
      self.postJson('/api/v1/checkin', checkin, function (err, bytes) {
        if (err) return cb(err);
        // After the app's part succeeds, a boot offer in the same answer (boot-target.ts).
        const done: Callback<UpdateResult> = function (e, r) {
          if (e || !bootHook) return cb(e, r);
          bootHook.afterCheckin(bytes as Uint8Array, r as UpdateResult, cb);
        };
        let offer: Offer | null;
        try {
          offer = parseOffer(bytes as Uint8Array);
        } catch (e) {
          return cb(asSignetError(e));
        }
        if (!offer) {
          self.log('ota[CHECKIN] offer=none');
          return done(null, { outcome: 'none' });
        }
        self.log('ota[OFFER] target=' + offer.target + ' version=' + offer.version + ' rollout=' + offer.rollout);
        const o = offer;
        self.install(o, dev, function (err2, r) {
          if (!err2) return done(null, r);
          self.log('ota[REFUSED] target=' + o.target + ' reason=' + err2.code);
          if (isTransient(err2.code)) return cb(err2);
          self.report({ rollout: o.rollout, target: o.target, status: 'failed', code: err2.code }, function () {
            cb(err2);
          });
        });
      });
    });
  }

  /** Try each source in turn until one serves metadata and bytes that verify. */
  private install(offer: Offer, dev: DeviceStatus, cb: Callback<UpdateResult>): void {
    const self = this;
    const reported = { downloading: false };
    const from = function (i: number): void {
      self.installFrom(i, offer, dev, reported, function (err, r, fault) {
        if (!err) return cb(null, r);
        if (!fault || !sourceFault(err.code) || i + 1 >= self.sources.length) return cb(err);
        self.log('ota[MIRROR] source=' + self.sources[i] + ' refused reason=' + err.code + ' next=' + self.sources[i + 1]);
        from(i + 1);
      });
    };
    from(0);
  }

  /** `fault`: the error is this source's (the metadata or the target bytes), another may do. */
  private installFrom(i: number, offer: Offer, dev: DeviceStatus, reported: { downloading: boolean },
    done: (err: SignetError | null, r?: UpdateResult, fault?: boolean) => void): void {
    const self = this;
    const o = this.o;
    this.active = i;
    const tuf = this.clients[i];
    const cb: Callback<UpdateResult> = function (err, r) {
      done(err, r, false);
    };
    const fault = function (err: SignetError): void {
      done(err, undefined, true);
    };
    // TUF 5.3–5.6: only what the signed metadata says counts from here on.
    tuf.refresh(function (err) {
      if (err) return fault(err);
      let info: TargetFile | null;
      let custom: TargetCustom;
      try {
        // 5.7.1: the offered target must be in the signed targets metadata.
        info = tuf.target(offer.target);
        if (!info) return fault(new OtaError('E_TARGET_UNKNOWN', 'target ' + offer.target + ' is not in the signed targets metadata'));
        // roles.ts checkTargetsShape guarantees custom { board, version, securityCounter, name }.
        custom = info.custom;
        // Policy before download: wrong software, rollback, endless data.
        if (custom.board !== dev.board) {
          throw new OtaError('E_TARGET_BOARD', 'target ' + offer.target + ' is for board ' + custom.board + ', this device is ' + dev.board);
        }
        if (custom.securityCounter < dev.securityFloor) {
          throw new OtaError('E_TARGET_ROLLBACK', 'target ' + offer.target + ' has security counter ' + custom.securityCounter + ', below the device floor ' + dev.securityFloor);
        }
        if (info.length > o.maxImageBytes) {
          throw new OtaError('E_TARGET_TOO_LARGE', 'target ' + offer.target + ' is ' + info.length + ' bytes, the slot holds ' + o.maxImageBytes);
        }
      } catch (e) {
        return cb(asSignetError(e));
      }
      if (custom.version === dev.version && custom.securityCounter === dev.securityCounter) {
        self.log('ota[CURRENT] version=' + dev.version);
        return cb(null, { outcome: 'current', offer: offer });
      }
      const signed = info as TargetFile;
      const download = function (): void {
        // 5.7.2–5.7.3: download, length and SHA-256 while streaming.
        tuf.downloadTarget(offer.target, signed, function (err2, bytes) {
          if (err2) return fault(err2);
          const image = bytes as Uint8Array;
          const slot: SlotName = dev.slot === 'a' ? 'b' : 'a';
          try {
            // The one image verifier, with the root TUF just reached.
            const v = verifyImage(image, {
              root: tuf.root(), board: dev.board, minSecurityCounter: dev.securityFloor,
              now: o.now(), crypto: o.crypto, maxPayloadBytes: o.maxImageBytes,
            });
            const m = v.manifest;
            if (m.board !== custom.board || m.version !== custom.version || m.securityCounter !== custom.securityCounter) {
              throw new OtaError('E_TARGET_MANIFEST', 'image manifest (' + m.board + ' ' + m.version + ' #' + m.securityCounter +
                ') differs from its targets entry (' + custom.board + ' ' + custom.version + ' #' + custom.securityCounter + ')');
            }
          } catch (e) {
            return cb(asSignetError(e));
          }
          self.installRootChain(function (err3) {
            if (err3) return cb(err3);
            try {
              // The boot stage verifies once more before writing the inactive slot.
              o.install.stageImage(image);
              self.setPending({
                rollout: offer.rollout, target: offer.target, version: custom.version,
                securityCounter: custom.securityCounter, slot: slot, status: 'staged',
              });
            } catch (e) {
              return cb(asSignetError(e));
            }
            self.log('ota[STAGED] target=' + offer.target + ' slot=' + slot + ' version=' + custom.version);
            self.report({ rollout: offer.rollout, target: offer.target, status: 'staged' }, function () {
              cb(null, { outcome: 'staged', offer: offer, slot: slot });
            });
          });
        });
      };
      if (reported.downloading) return download();
      reported.downloading = true;
      self.report({ rollout: offer.rollout, target: offer.target, status: 'downloading' }, download);
    });
  }

  /**
   * Bring the boot stage's root up to the one TUF reached: fetch the links it lacks (its
   * version + 1 … ours) and hand them to the install API, which verifies each from its own
   * root before it writes anything. A boot stage without the API keeps its root.
   */
  private installRootChain(cb: (err: SignetError | null) => void): void {
    const inst = this.o.install;
    if (!inst.installRoots || !inst.rootVersion) return cb(null);
    const have = inst.rootVersion();
    const want = this.tuf.root().version;
    if (want <= have) return cb(null);
    const self = this;
    const links: Uint8Array[] = [];
    const base = this.sources[this.active] + '/metadata/';
    const next = function (v: number): void {
      if (v > want) {
        try {
          const got = inst.installRoots!(links);
          self.log('ota[ROOT] installed version=' + got);
        } catch (e) {
          return cb(asSignetError(e));
        }
        return cb(null);
      }
      fetchBytes(self.o.fetcher, { url: base + v + '.root.json', maxBytes: ROOT_LINK_MAX }, function (err, bytes) {
        if (err) return cb(err);
        links.push(bytes as Uint8Array);
        next(v + 1);
      });
    };
    next(have + 1);
  }

  /**
   * After each boot: a pending install running its trial reports `booted-trial` (once); one
   * the boot stage fell back from reports `failed` with the boot stage's code.
   */
  afterBoot(boot: BootReport, callback: (err: SignetError | null) => void): void {
    const p = this.pending();
    if (!p) return this.flushReports(callback);
    if (boot.slot === p.slot && boot.trial) {
      if (p.status === 'booted-trial') return this.flushReports(callback);
      p.status = 'booted-trial';
      this.setPending(p);
      return this.report({ rollout: p.rollout, target: p.target, status: 'booted-trial' }, callback);
    }
    if (boot.slot === p.slot) {
      // Running the new slot as good: confirmed before the report went out.
      this.setPending(null);
      return this.report({ rollout: p.rollout, target: p.target, status: 'confirmed' }, callback);
    }
    if (p.status === 'staged' && !boot.trial && boot.lastError === '') {
      // Not booted into the trial yet (no reboot since staging): nothing to say.
      return this.flushReports(callback);
    }
    this.setPending(null);
    this.report({ rollout: p.rollout, target: p.target, status: 'failed', code: boot.lastError || 'E_TRIAL_EXHAUSTED' }, callback);
  }

  /** The app's health check passed and the boot stage confirmed the trial slot. */
  confirmed(callback: (err: SignetError | null) => void): void {
    const p = this.pending();
    if (!p) return this.flushReports(callback);
    this.setPending(null);
    this.report({ rollout: p.rollout, target: p.target, status: 'confirmed' }, callback);
  }
}
