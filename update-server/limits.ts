/**
 * How much of the server one client can hold, and for how long: every phase of a connection
 * has a deadline, connections are capped globally and per client address, and each device may
 * write (check in, report) only so often. The numbers and why each is what it is are in
 * docs/update-server.md, "Threat model and limits"; `signet server --limit NAME=VALUE` changes
 * one.
 *
 * This file holds the numbers, the per-device token buckets and the per-address connection
 * counts; the HTTPS adapter (http-node.ts) applies them.
 */
import { ServerError } from './errors';
import { errorResponse, type AppRequest, type AppResponse, type ClientCert } from './http';

export interface ServerLimits {
  /** TCP accept to a finished TLS handshake, including the wait for the ClientHello. */
  handshakeTimeoutMs: number;
  /** A request's headers, from the connection being ready (or the request's first byte) to the blank line. */
  headersTimeoutMs: number;
  /** How often Node checks connections against headersTimeoutMs (the check's own granularity). */
  checkIntervalMs: number;
  /** Idle time allowed between two requests on a kept-alive connection. */
  keepAliveTimeoutMs: number;
  /** Requests on one connection before the server closes it. */
  maxRequestsPerSocket: number;
  /** A request body must start within this long, and then keep up with bodyMinBytesPerS. */
  bodyGraceMs: number;
  /** Each this many bytes of a request body buys one more second (Apache mod_reqtimeout's MinRate). */
  bodyMinBytesPerS: number;
  /** Largest body any request may announce; beyond it 413 before a byte of it is read. */
  maxBodyBytes: number;
  /** A response write that makes no progress for this long (the reader stopped reading) closes the connection. */
  writeStallMs: number;
  /** Any connection with no traffic either way for this long is closed (a backstop for every other rule). */
  idleTimeoutMs: number;
  /** Open connections in total; beyond it new ones are closed at once. */
  maxConnections: number;
  /** Open connections from one client address; beyond it new ones from that address are closed at once. */
  maxConnectionsPerAddress: number;
  /** Bytes of request headers (Node's maxHeaderSize); beyond it 431. */
  maxHeaderBytes: number;
  /** Check-ins and reports one device may send in a burst... */
  deviceBurst: number;
  /** ...and per second after it (a token bucket per device identity); beyond it 429 with Retry-After. */
  deviceRatePerS: number;
  /** Devices whose buckets are remembered at once (the oldest are forgotten, i.e. start full again). */
  deviceBuckets: number;
  /** Strict-Transport-Security max-age on HTML responses, seconds; 0 sends none. */
  hstsMaxAgeS: number;
}

export const DEFAULT_SERVER_LIMITS: Readonly<ServerLimits> = Object.freeze({
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  checkIntervalMs: 1_000,
  keepAliveTimeoutMs: 15_000,
  maxRequestsPerSocket: 1_000,
  bodyGraceMs: 10_000,
  bodyMinBytesPerS: 16 * 1024,
  maxBodyBytes: 512 * 1024 * 1024,
  writeStallMs: 30_000,
  idleTimeoutMs: 120_000,
  maxConnections: 4_096,
  maxConnectionsPerAddress: 64,
  maxHeaderBytes: 16 * 1024,
  deviceBurst: 30,
  deviceRatePerS: 1,
  deviceBuckets: 100_000,
  hstsMaxAgeS: 31_536_000,
});

/** The names `--limit NAME=VALUE` takes (kebab-case of the fields), with the range each may have. */
export const LIMIT_NAMES: Readonly<Record<string, { key: keyof ServerLimits; min: number; max: number }>> = Object.freeze({
  'handshake-timeout-ms': { key: 'handshakeTimeoutMs', min: 1, max: 600_000 },
  'headers-timeout-ms': { key: 'headersTimeoutMs', min: 1, max: 600_000 },
  'check-interval-ms': { key: 'checkIntervalMs', min: 1, max: 60_000 },
  'keep-alive-timeout-ms': { key: 'keepAliveTimeoutMs', min: 1, max: 600_000 },
  'max-requests-per-socket': { key: 'maxRequestsPerSocket', min: 1, max: 1_000_000 },
  'body-grace-ms': { key: 'bodyGraceMs', min: 1, max: 600_000 },
  'body-min-bytes-per-s': { key: 'bodyMinBytesPerS', min: 1, max: 1 << 30 },
  'max-body-bytes': { key: 'maxBodyBytes', min: 0, max: 2 ** 40 },
  'write-stall-ms': { key: 'writeStallMs', min: 1, max: 3_600_000 },
  'idle-timeout-ms': { key: 'idleTimeoutMs', min: 1, max: 3_600_000 },
  'max-connections': { key: 'maxConnections', min: 1, max: 1_000_000 },
  'max-connections-per-address': { key: 'maxConnectionsPerAddress', min: 1, max: 1_000_000 },
  'max-header-bytes': { key: 'maxHeaderBytes', min: 1024, max: 1 << 20 },
  'device-burst': { key: 'deviceBurst', min: 1, max: 1_000_000 },
  'device-rate-per-s': { key: 'deviceRatePerS', min: 0.001, max: 1_000_000 },
  'device-buckets': { key: 'deviceBuckets', min: 1, max: 10_000_000 },
  'hsts-max-age-s': { key: 'hstsMaxAgeS', min: 0, max: 2 ** 31 },
});

/** Defaults with `overrides` on top, each checked against its range. */
export function serverLimits(overrides: Partial<ServerLimits> = {}): ServerLimits {
  const out: ServerLimits = { ...DEFAULT_SERVER_LIMITS };
  for (const [name, { key, min, max }] of Object.entries(LIMIT_NAMES)) {
    const v = overrides[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      throw new ServerError('E_SERVER_CONFIG', `limit ${name} must be a number from ${min} to ${max}, not ${String(v)}`);
    }
    out[key] = v;
  }
  return out;
}

/** `NAME=VALUE` strings (the CLI's repeatable `--limit`) as overrides. */
export function parseLimitArgs(args: readonly string[]): Partial<ServerLimits> {
  const out: Partial<ServerLimits> = {};
  for (const a of args) {
    const m = /^([a-z-]{1,40})=([0-9]+(?:\.[0-9]+)?)$/.exec(a);
    const spec = m ? LIMIT_NAMES[m[1]] : undefined;
    if (!m || !spec) {
      throw new ServerError('E_SERVER_CONFIG', `--limit ${JSON.stringify(a.slice(0, 80))} is not NAME=NUMBER with NAME one of ${Object.keys(LIMIT_NAMES).join(', ')}`);
    }
    out[spec.key] = Number(m[2]);
  }
  serverLimits(out);
  return out;
}

/**
 * One token bucket per key (RFC 2697's single-rate idea, without colors): `burst` tokens,
 * refilled at `ratePerS`; each request takes one. Remembers at most `maxKeys` buckets; the
 * oldest is forgotten first (it comes back full, which only ever errs towards letting a device in).
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly burst: number, private readonly ratePerS: number, private readonly maxKeys: number,
    private readonly now: () => number = () => performance.now()) {}

  /** 0 when the request may go ahead, else the whole seconds until a token is there. */
  take(key: string): number {
    const t = this.now();
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key); // re-inserted below: Map order is then least recently used first
      b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.ratePerS);
      b.at = t;
    } else {
      b = { tokens: this.burst, at: t };
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
    }
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.ratePerS));
  }
}

/** Who the request is by, as far as TLS could tell: `device:ID`, `admin:ID` or `anonymous`. */
export function identityOf(c: ClientCert): string {
  if (!c.present || !c.authorized || !c.commonName) return 'anonymous';
  if (c.roles.includes('admin')) return 'admin:' + c.commonName;
  if (c.roles.includes('device')) return 'device:' + c.commonName;
  return 'anonymous';
}

/** The device endpoints that write to the database (docs/ota-protocol.md §2). */
const DEVICE_WRITES = /^\/api\/v1\/(checkin|report)$/;

/**
 * Refuse a device's check-in or report beyond its token bucket with 429 and Retry-After,
 * before the app reads the body or touches the database. Keyed by the identity TLS verified
 * (a certificate the vendor CA issued), so nobody can spend another device's tokens; requests
 * without such a certificate go on to the app, which refuses them.
 */
export function deviceRateLimit(buckets: TokenBuckets): (req: AppRequest) => AppResponse | null {
  return (req) => {
    if (req.method !== 'POST' || !DEVICE_WRITES.test(req.path)) return null;
    const who = identityOf(req.client);
    if (!who.startsWith('device:')) return null;
    const wait = buckets.take(who);
    if (wait === 0) return null;
    const r = errorResponse(new ServerError('E_RATE_LIMITED', `${who.slice(7)} sent more than its share of check-ins and reports; wait ${wait} s`));
    r.headers['retry-after'] = String(wait);
    return r;
  };
}

/** Open connections per client address, for the per-address cap. */
export class AddressCounts {
  private readonly counts = new Map<string, number>();

  /** Count one more from `address`; false (and nothing counted) when it already has `max`. */
  open(address: string, max: number): boolean {
    const n = this.counts.get(address) ?? 0;
    if (n >= max) return false;
    this.counts.set(address, n + 1);
    return true;
  }

  close(address: string): void {
    const n = (this.counts.get(address) ?? 0) - 1;
    if (n > 0) this.counts.set(address, n);
    else this.counts.delete(address);
  }

  get(address: string): number {
    return this.counts.get(address) ?? 0;
  }
}

/**
 * One key per client for the per-address cap: an IPv4 address (also when IPv4-mapped,
 * `::ffff:1.2.3.4`), or an IPv6 address's /64 (one subscriber usually holds a whole /64, so
 * counting single IPv6 addresses would not cap anyone).
 */
export function addressKey(address: string | undefined): string {
  if (!address) return '';
  const a = address.toLowerCase().replace(/%.*$/, '');
  if (a.startsWith('::ffff:') && a.includes('.')) return a.slice(7);
  if (!a.includes(':') || a.includes('.')) return a;
  const [head, tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = a.includes('::') ? [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t] : h;
  if (groups.length !== 8) return a;
  if (groups.slice(0, 7).every((g) => /^0+$/.test(g))) return a; // ::1 and ::
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':') + '::/64';
}
