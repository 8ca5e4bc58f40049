/**
 * The OTA agent on the device (docs/ota-agent.md "On the device"): the boot stage starts it
 * next to the app, on the same event loop, with the device's identity from the config store
 * (`signet device provision --identity`). It is the same `OtaAgent` as everywhere, given the
 * device's pieces:
 *
 *   fetcher   DeviceFetcher: the runtime's fetch, HTTPS with mutual TLS (mbed TLS in the host)
 *   store     the agent's own records (pending install, report queue) as settings in the
 *             config store, so they survive the reboot into the trial; TUF metadata in memory
 *             (the 8 KiB store cannot hold it: each boot starts TUF from the boot stage's root),
 *             but the versions last trusted (`ota.tuf`) persist, so rollback checks outlast a reboot
 *   install   the boot stage's install API (stageImage, installRootChain)
 *   schedule  CheckinSchedule: a first check-in soon after boot, then every interval, each
 *             with jitter; failures back off exponentially; a 429's Retry-After is honoured
 *
 * After a cycle that staged an update the device reboots into the trial; the boot stage trial-
 * boots it, the app's confirm() confirms it, and the agent reports `booted-trial` and
 * `confirmed` from the new slot. ES5, no Node imports.
 */
import type { ImageCrypto } from '../image/crypto';
import type { HostConfig } from '../runtime/config-types';
import { clearTimeout, setTimeout, type Timeout } from '../runtime/timers';
import { utf8Decode, utf8Encode } from '../util/bytes';
import type { SignetError } from '../util/errors';
import { OtaAgent, PENDING_FILE, REPORTS_FILE, type BootReport, type DeviceStatus, type InstallApi } from './agent';
import { STORE_FILES, type MetadataStore } from './client';
import { MemoryMetadataStore } from './client-store';
import { BOOT_STATE_FILE, BootTargetAgent, type BootSlotsDevice } from './boot-target-agent';
import type { BootFitKey, FitCrypto } from './boot-target-fit';
import { DeviceFetcher, type RetryAfter } from './fetcher-device';

/** Settings (`signet device provision --set`) and files (`--identity`) the agent reads. */
export const AGENT_SETTINGS = {
  /** The update server's base URL as the device dials it, e.g. https://10.0.2.2:8443. Without it the agent does not run. */
  server: 'ota.server',
  /** The name the server's certificate must carry (default: the URL's host). */
  servername: 'ota.servername',
  /** Seconds between check-ins (default 900). */
  interval: 'ota.interval-s',
  /** Seconds from boot to the first check-in (default 10). */
  first: 'ota.first-s',
} as const;

export const AGENT_FILES = { cert: 'ota-client.crt', key: 'ota-client.key', ca: 'ota-ca.crt' } as const;

/** The agent's records that must survive a reboot, and the settings that hold them. */
const PERSISTED: Record<string, string> = {};
PERSISTED[PENDING_FILE] = 'ota.pending';
PERSISTED[REPORTS_FILE] = 'ota.reports';
// The boot-image agent's floor and pending boot install (boot-target-agent.ts): a few hundred bytes.
PERSISTED[BOOT_STATE_FILE] = 'ota.boot';
// TUF's rollback floors (client.ts TufFloors): ~100 bytes, written only when a version rises.
PERSISTED[STORE_FILES.floors] = 'ota.tuf';

/** The agent's store on a device: its small records and TUF's floors in the config store, TUF metadata in memory. */
export class ConfigAgentStore implements MetadataStore {
  private readonly config: HostConfig;
  private readonly memory = new MemoryMetadataStore();

  constructor(config: HostConfig) {
    this.config = config;
  }

  read(name: string): Uint8Array | null {
    if (!Object.prototype.hasOwnProperty.call(PERSISTED, name)) return this.memory.read(name);
    const v = this.config.get(PERSISTED[name]);
    return v === undefined ? null : utf8Encode(v);
  }

  write(name: string, bytes: Uint8Array): void {
    if (!Object.prototype.hasOwnProperty.call(PERSISTED, name)) return this.memory.write(name, bytes);
    const text = utf8Decode(bytes);
    this.config.set(PERSISTED[name], text === null ? '' : text);
  }

  remove(name: string): void {
    if (!Object.prototype.hasOwnProperty.call(PERSISTED, name)) return this.memory.remove(name);
    this.config.delete(PERSISTED[name]);
  }
}

export interface ScheduleOptions {
  /** Between successful check-ins (s). */
  intervalS: number;
  /** Boot to first check-in (s). */
  firstS: number;
  /** Each delay is stretched by up to this share at random (0.25: up to 25 % later). */
  jitter?: number;
  /** The first retry after a failure (s); doubled per failure in a row, up to maxBackoffS. */
  retryS?: number;
  maxBackoffS?: number;
  random?(): number;
}

/**
 * When to check in next. Jitter spreads a fleet that booted together (a power cut) so it does
 * not hit the server at once; back-off keeps a failing fleet from hammering a struggling server;
 * a Retry-After from the server is a floor on the next delay.
 */
export class CheckinSchedule {
  private readonly o: ScheduleOptions;
  private failures = 0;

  constructor(o: ScheduleOptions) {
    this.o = o;
  }

  private rand(): number {
    return this.o.random ? this.o.random() : Math.random();
  }

  private jittered(s: number): number {
    const j = this.o.jitter !== undefined ? this.o.jitter : 0.25;
    return Math.round(s * 1000 * (1 + j * this.rand()));
  }

  /** Milliseconds from boot to the first check-in. */
  first(): number {
    return this.jittered(this.o.firstS);
  }

  /** Milliseconds to the next check-in after one that succeeded (null) or failed. */
  after(err: SignetError | null): number {
    if (!err) {
      this.failures = 0;
      return this.jittered(this.o.intervalS);
    }
    this.failures++;
    const retry = this.o.retryS !== undefined ? this.o.retryS : 5;
    const max = this.o.maxBackoffS !== undefined ? this.o.maxBackoffS : Math.max(this.o.intervalS, retry);
    const base = Math.min(max, retry * Math.pow(2, Math.min(this.failures - 1, 20)));
    // Half fixed, half random ("equal jitter"): never sooner than half the back-off.
    let ms = Math.round(base * 1000 * (0.5 + 0.5 * this.rand()));
    const after = (err as SignetError & RetryAfter).retryAfterS;
    if (typeof after === 'number' && after * 1000 > ms) ms = after * 1000;
    return ms;
  }

  /** Failed check-ins in a row. */
  failuresInARow(): number {
    return this.failures;
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Unix seconds of an HTTP `Date` (RFC 9110 IMF-fixdate only), or null. */
export function parseHttpDate(v: string | undefined): number | null {
  const m = v ? /^[A-Z][a-z]{2}, (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/.exec(v) : null;
  if (!m) return null;
  const month = MONTHS.indexOf(m[2]);
  if (month < 0) return null;
  const t = Date.UTC(Number(m[3]), month, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  return isNaN(t) ? null : Math.floor(t / 1000);
}

/**
 * The device's clock for the agent. A device without a clock of its own (no RTC driver: the
 * guest's system clock starts at 1970, `nowSeconds()` null) takes the time from the `Date` of
 * the update server's API answers: that server is authenticated by mutual TLS against the vendor
 * CA, and mirrors (untrusted) are never asked. It is used only when the device has no clock,
 * and then only for TUF expiry (5.1) and the image's expiry; it cannot make a forged or
 * rolled-back file verify, but a compromised API server could make expired metadata look fresh
 * (a freeze), which it could also do by signing a fresh timestamp with its online key.
 */
export class ServerClock {
  private readonly apiPrefix: string;
  private readonly own: () => number | null;
  private readonly monotonicS: () => number;
  private offset: number | null = null;

  constructor(serverUrl: string, own: () => number | null, monotonicS?: () => number) {
    this.apiPrefix = serverUrl.replace(/\/+$/, '') + '/api/';
    this.own = own;
    this.monotonicS = monotonicS || function () { return Date.now() / 1000; };
  }

  /** An answer's headers: the API server's Date sets the offset. */
  observe(url: string, headers: Record<string, string>): void {
    if (url.indexOf(this.apiPrefix) !== 0) return;
    const t = parseHttpDate(headers.date);
    if (t !== null) this.offset = t - this.monotonicS();
  }

  /** The device's own time when it has one, else the server's, else null (E_CLOCK). */
  now(): number | null {
    const own = this.own();
    if (own !== null) return own;
    return this.offset === null ? null : Math.floor(this.monotonicS() + this.offset);
  }

  /** Where now() comes from. */
  source(): 'device' | 'server' | 'none' {
    return this.own() !== null ? 'device' : this.offset === null ? 'none' : 'server';
  }
}

export interface DeviceAgentConfig {
  serverUrl: string;
  servername?: string;
  intervalS: number;
  firstS: number;
  ca: string;
  cert: string;
  key: string;
}

function seconds(config: HostConfig, key: string, dflt: number): number {
  const v = config.get(key);
  if (v === undefined) return dflt;
  if (!/^\d{1,7}(\.\d{1,3})?$/.test(v)) throw codedError('E_AGENT_CONFIG', 'setting ' + key + ' is not a number of seconds');
  return Number(v);
}

function codedError(code: string, message: string): Error {
  const e = new Error(message) as Error & { code: string };
  e.code = code;
  return e;
}

/**
 * The agent's configuration from the config store, or null when the device was provisioned
 * without an update server (no `ota.server`: no agent). A server without the identity, or a
 * malformed setting, throws with a code (E_CONFIG_MISSING, E_AGENT_CONFIG).
 */
export function readAgentConfig(config: HostConfig): DeviceAgentConfig | null {
  const server = config.get(AGENT_SETTINGS.server);
  if (server === undefined) return null;
  if (!/^https:\/\/[^\s/?#]+\/?$/.test(server)) throw codedError('E_AGENT_CONFIG', 'setting ' + AGENT_SETTINGS.server + ' is not an https:// base URL');
  return {
    serverUrl: server.replace(/\/+$/, ''),
    servername: config.get(AGENT_SETTINGS.servername),
    intervalS: seconds(config, AGENT_SETTINGS.interval, 900),
    firstS: seconds(config, AGENT_SETTINGS.first, 10),
    ca: config.file(AGENT_FILES.ca),
    cert: config.file(AGENT_FILES.cert),
    key: config.secret(AGENT_FILES.key),
  };
}

export interface DeviceAgentOptions {
  config: HostConfig;
  agent: DeviceAgentConfig;
  device(): DeviceStatus;
  /** What the boot stage decided this boot. */
  boot: BootReport;
  install: InstallApi;
  crypto: ImageCrypto;
  rootBytes: Uint8Array;
  now(): number | null;
  maxImageBytes: number;
  log(line: string): void;
  /** Restart the device (into the trial the agent just armed). */
  reboot(): void;
  random?(): number;
  /**
   * A/B boot slots (an `--boot-ab` disk): the agent also reports the running boot image and takes
   * boot offers (boot-target-agent.ts). The slots and the FIT key come from the boot stage's
   * compiled-in configuration, the FIT check's SHA-256 and RSA from the C host.
   */
  bootSlots?: { board: string; fitKeys: BootFitKey[]; fitCrypto: FitCrypto; device(): BootSlotsDevice };
}

export interface DeviceAgentHandle {
  readonly agent: OtaAgent;
  readonly bootAgent: BootTargetAgent | null;
  /** The app's confirm() went through (and the boot stage confirmed the boot slot): report `confirmed`. */
  confirmed(): void;
  stop(): void;
}

/**
 * Start the agent: report this boot (afterBoot: `booted-trial`, or `failed` after a fallback),
 * then check in on the schedule until an update is staged, then reboot into it.
 */
export function startDeviceAgent(o: DeviceAgentOptions): DeviceAgentHandle {
  const c = o.agent;
  const clock = new ServerClock(c.serverUrl, o.now);
  let bootAgent: BootTargetAgent | null = null;
  const store = new ConfigAgentStore(o.config);
  const agent = new OtaAgent({
    serverUrl: c.serverUrl,
    fetcher: new DeviceFetcher({
      tls: { ca: c.ca, cert: c.cert, key: c.key, servername: c.servername },
      onResponse: function (url, headers) { clock.observe(url, headers); },
    }),
    store: store,
    crypto: o.crypto,
    rootBytes: o.rootBytes,
    now: function () { return clock.now(); },
    device: o.device,
    install: o.install,
    maxImageBytes: o.maxImageBytes,
    log: o.log,
    boot: o.bootSlots ? {
      checkin: function () { return (bootAgent as BootTargetAgent).checkin(); },
      afterCheckin: function (answer, result, cb) { (bootAgent as BootTargetAgent).afterCheckin(answer, result, cb); },
    } : undefined,
  });
  if (o.bootSlots) {
    const b = o.bootSlots;
    bootAgent = new BootTargetAgent({ agent: agent, store: store, fitKeys: b.fitKeys, fitCrypto: b.fitCrypto, board: b.board, device: b.device, log: o.log });
  }
  // What became of a pending boot image, after a boot and again after the app confirmed (then
  // the boot stage has confirmed the boot slot): booted-trial, confirmed or failed.
  const bootAfterBoot = function (cb: () => void): void {
    if (!bootAgent) return cb();
    bootAgent.afterBoot(function (err) {
      if (err) o.log('ota[BOOT-REPORT] reason=' + err.code);
      cb();
    });
  };
  const schedule = new CheckinSchedule({ intervalS: c.intervalS, firstS: c.firstS, random: o.random });
  let timer: Timeout | undefined;
  let stopped = false;
  // Reports go out one exchange at a time: confirm() may come while afterBoot still reports.
  let ready = false;
  let wantConfirm = false;

  const next = function (ms: number): void {
    if (stopped) return;
    timer = setTimeout(cycle, ms);
  };
  const cycle = function (): void {
    timer = undefined;
    try {
      agent.checkForUpdate(function (err, r) {
        if (err) {
          const ms = schedule.after(err);
          o.log('ota[RETRY] reason=' + err.code + ' failures=' + schedule.failuresInARow() + ' in_ms=' + ms);
          return next(ms);
        }
        if (r && (r.outcome === 'staged' || (r.boot && r.boot.outcome === 'staged'))) {
          o.log('ota[REBOOT] slot=' + (r.outcome === 'staged' ? r.slot : '') + ' version=' + (r.outcome === 'staged' && r.offer ? r.offer.version : '') +
            (r.boot && r.boot.outcome === 'staged' ? ' boot_slot=' + r.boot.slot + ' boot_version=' + r.boot.offer.version : ''));
          stopped = true;
          o.reboot();
          return;
        }
        next(schedule.after(null));
      });
    } catch (e) {
      // A bug must not take the service down with it: log, back off, try again.
      o.log('ota[ERROR] ' + String(e && (e as Error).message));
      next(schedule.after(codedError('E_INTERNAL', String(e)) as unknown as SignetError));
    }
  };

  agent.afterBoot(o.boot, function () {
    bootAfterBoot(afterReports);
  });
  function afterReports(): void {
    ready = true;
    const go = function (): void {
      const ms = schedule.first();
      o.log('ota[AGENT] server=' + c.serverUrl + ' first_ms=' + ms + ' interval_s=' + c.intervalS + ' clock=' + (clock.source() === 'device' ? 'device' : 'server'));
      next(ms);
    };
    if (!wantConfirm) return go();
    wantConfirm = false;
    agent.confirmed(function () { bootAfterBoot(go); });
  }

  return {
    agent: agent,
    bootAgent: bootAgent,
    confirmed: function () {
      if (!ready) {
        wantConfirm = true;
        return;
      }
      agent.confirmed(function () { bootAfterBoot(function () {}); });
    },
    stop: function () {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
