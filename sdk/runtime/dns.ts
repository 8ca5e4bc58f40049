/**
 * Name lookups, a subset of node:dns: lookup (callback and promises.lookup), resolve4, resolve6,
 * getServers, setServers. A small stub resolver over the runtime's UDP (dns-packet.ts reads the
 * answers): it asks the servers in order, each try bounded by `timeout` ms, `tries` rounds,
 * without cache, without TCP (a truncated answer counts as a failed try).
 *
 * The servers are, first to last found: what the service gave dns.setServers(); else what the
 * device's network names (board.network.dns, else DHCP's option 6; __signet_host.uv.netInfo());
 * else none, and a lookup fails with ECONNREFUSED without sending anything. IP literals and
 * `localhost` (and `*.localhost`) are answered without a query.
 *
 * Errors carry Node's codes: ENOTFOUND (no such name, or no address of the family asked),
 * ETIMEOUT, ESERVFAIL, EREFUSED, EBADRESP, EBADNAME, ECONNREFUSED (no server), and `hostname`.
 */
import type { NetInfo, UvBinding } from './binding';
import { codedError, requireLoop, type CodedError } from './host';
import { isIP, isIPv4 } from './ip';
import { guard } from './jobs';
import { encodeQuery, MAX_MESSAGE, nameLabels, parseAnswer, RCODE_NXDOMAIN, RCODE_OK, RCODE_REFUSED, TYPE_A, TYPE_AAAA } from './dns-packet';

export interface LookupOptions {
  /** 4, 6, or 0 (any: A first, AAAA when there is no A). */
  family?: number;
  /** All addresses, as [{ address, family }]. */
  all?: boolean;
}

export interface LookupAddress {
  address: string;
  family: number;
}

/** Per try, in ms (each server asked in turn, `TRIES` rounds). */
const TIMEOUT_MS = 2000;
const TRIES = 2;
/** Servers kept (as many as a device's network gives). */
const MAX_SERVERS = 3;

interface Server {
  address: string;
  port: number;
}

let configured: Server[] | null = null;

declare const __signet_host: { uv?: { netInfo?(): NetInfo | null } } | undefined;

function hostServers(): Server[] {
  const host = typeof __signet_host !== 'undefined' ? __signet_host : undefined;
  const info = host && host.uv && host.uv.netInfo ? host.uv.netInfo() : null;
  const out: Server[] = [];
  if (info && info.dns) for (let i = 0; i < info.dns.length && out.length < MAX_SERVERS; i++) if (isIPv4(info.dns[i])) out.push({ address: info.dns[i], port: 53 });
  return out;
}

function servers(): Server[] {
  return configured !== null ? configured : hostServers();
}

/** The servers a lookup asks now: 'a.b.c.d', or 'a.b.c.d:port' when the port is not 53. */
export function getServers(): string[] {
  const s = servers();
  const out: string[] = [];
  for (let i = 0; i < s.length; i++) out.push(s[i].port === 53 ? s[i].address : s[i].address + ':' + s[i].port);
  return out;
}

/**
 * Replaces the servers for this service: IPv4 addresses, each with an optional ':port'
 * (default 53), at most 3. An empty list means none. A bad entry throws
 * ERR_INVALID_IP_ADDRESS and changes nothing.
 */
export function setServers(list: string[]): void {
  if (!list || typeof list.length !== 'number') throw codedError('ERR_INVALID_ARG_TYPE', 'dns.setServers: give an array of addresses');
  if (list.length > MAX_SERVERS) throw codedError('ERR_INVALID_ARG_VALUE', 'dns.setServers: at most ' + MAX_SERVERS + ' servers');
  const out: Server[] = [];
  for (let i = 0; i < list.length; i++) {
    const m = /^([0-9.]+)(?::(\d{1,5}))?$/.exec(String(list[i]));
    const port = m && m[2] !== undefined ? Number(m[2]) : 53;
    if (!m || !isIPv4(m[1]) || port < 1 || port > 65535) {
      throw codedError('ERR_INVALID_IP_ADDRESS', "dns.setServers: '" + String(list[i]) + "' is not an IPv4 address with an optional :port");
    }
    out.push({ address: m[1], port });
  }
  configured = out;
}

function dnsError(code: string, syscall: string, hostname: string, detail?: string): CodedError {
  const e = codedError(code, syscall + ' ' + code + ' ' + hostname + (detail ? ' (' + detail + ')' : '')) as CodedError & { hostname: string; syscall: string };
  e.hostname = hostname;
  e.syscall = syscall;
  return e;
}

declare const crypto: { getRandomValues(a: Uint8Array): Uint8Array } | undefined;

/** A query id from the system's random source (the device's getrandom, Node's crypto). */
function randomId(b: UvBinding): number {
  let r: Uint8Array | null = null;
  if (b.random) r = b.random(2);
  else if (typeof crypto !== 'undefined' && crypto && crypto.getRandomValues) r = crypto.getRandomValues(new Uint8Array(2));
  // Neither (a bare engine): the engine's generator; the system-chosen source port still varies.
  return r ? (r[0] << 8) | r[1] : Math.floor(Math.random() * 65536) & 0xffff;
}

/**
 * Asks for `type` records of `name`: each server in turn, TRIES rounds, one socket (a fresh
 * port from the system) per lookup. Answers from another address or port, or with another id,
 * are ignored; a malformed one counts as that server failing.
 */
function query(name: string, type: number, syscall: string, cb: (err: CodedError | null, addresses: string[]) => void): void {
  const list = servers();
  if (list.length === 0) {
    const e = dnsError('ECONNREFUSED', syscall, name, 'no DNS server: none from the network and none set with dns.setServers');
    setTimeoutOnce(function () { cb(e, []); });
    return;
  }
  const b = requireLoop('dns');
  let attempt = -1;
  let id = 0;
  let timer: number | undefined;
  let sock: number | undefined;
  let done = false;
  /** Which try the next 'sent' event reports on ('sent' comes once per send, in order). */
  let sentFor = 0;
  const sentTries: number[] = [];
  let lastError: CodedError = dnsError('ETIMEOUT', syscall, name);
  const finish = function (err: CodedError | null, addresses: string[]): void {
    if (done) return;
    done = true;
    if (timer !== undefined) b.close(timer);
    if (sock !== undefined) b.close(sock);
    cb(err, addresses);
  };
  const next = function (): void {
    if (timer !== undefined) b.close(timer);
    timer = undefined;
    attempt++;
    if (attempt >= list.length * TRIES) {
      finish(lastError, []);
      return;
    }
    const server = list[attempt % list.length];
    id = randomId(b);
    try {
      b.udpSend(sock as number, encodeQuery(id, name, type), server.address, server.port);
      sentTries.push(attempt);
    } catch (e) {
      lastError = dnsError((e as CodedError).code || 'ECONNREFUSED', syscall, name, (e as Error).message);
      next();
      return;
    }
    timer = b.timerStart(guard(function (event: string) {
      if (event !== 'timeout' || done) return;
      timer = undefined;
      lastError = dnsError('ETIMEOUT', syscall, name, 'no answer from ' + server.address + ':' + server.port + ' in ' + TIMEOUT_MS + ' ms');
      next();
    }), TIMEOUT_MS, 0);
  };
  try {
    sock = b.udpBind(guard(function (event: string, a?: unknown, c?: unknown, d?: unknown) {
      if (done) return;
      if (event === 'error' && attempt < 0) {
        finish(dnsError(String(a), syscall, name, String(c)), []);
        return;
      }
      if (event === 'listening' && attempt < 0) {
        next();
        return;
      }
      if (event === 'sent') {
        // A try the system could not send (no address yet, no route) fails now, not at its timeout.
        const which = sentTries[sentFor++];
        if (a !== undefined && which === attempt) {
          lastError = dnsError(String(a), syscall, name, String(c));
          next();
        }
        return;
      }
      if (event !== 'message' || attempt < 0) return;
      const server = list[attempt % list.length];
      const bytes = a as Uint8Array;
      // Only the server asked, from its port, answering this try.
      if (c !== server.address || d !== server.port || bytes.length < 2 || ((bytes[0] << 8) | bytes[1]) !== id) return;
      let answer;
      try {
        answer = parseAnswer(bytes.length > MAX_MESSAGE ? bytes.subarray(0, MAX_MESSAGE + 1) : bytes, id, name, type);
      } catch (e) {
        lastError = dnsError('EBADRESP', syscall, name, (e as Error).message);
        next();
        return;
      }
      if (answer.rcode === RCODE_NXDOMAIN) {
        finish(dnsError('ENOTFOUND', syscall, name), []);
      } else if (answer.rcode === RCODE_OK && !answer.truncated) {
        finish(answer.addresses.length ? null : dnsError('ENODATA', syscall, name), answer.addresses);
      } else {
        lastError = dnsError(answer.truncated ? 'EBADRESP' : answer.rcode === RCODE_REFUSED ? 'EREFUSED' : 'ESERVFAIL', syscall, name, answer.truncated ? 'truncated' : undefined);
        next();
      }
    }), '0.0.0.0', 0);
  } catch (e) {
    finish(dnsError((e as CodedError).code || 'ECONNREFUSED', syscall, name, (e as Error).message), []);
    return;
  }
  if (!b.asyncListen) next();
}

function setTimeoutOnce(f: () => void): void {
  const b = requireLoop('dns');
  b.timerStart(guard(function (e: string) { if (e === 'timeout') f(); }), 0, 0);
}

/** Addresses that need no query: IP literals, localhost. Null when a query is needed. */
function literal(hostname: string, family: number): LookupAddress[] | null {
  const f = isIP(hostname);
  if (f !== 0) return family === 0 || family === f ? [{ address: hostname, family: f }] : [];
  const h = hostname.toLowerCase().replace(/\.$/, '');
  if (h === 'localhost' || /\.localhost$/.test(h)) {
    return family === 6 ? [{ address: '::1', family: 6 }] : [{ address: '127.0.0.1', family: 4 }];
  }
  return null;
}

function lookupAll(hostname: string, family: number, cb: (err: CodedError | null, all: LookupAddress[]) => void): void {
  const known = literal(hostname, family);
  if (known !== null) {
    setTimeoutOnce(function () { cb(known.length ? null : dnsError('ENOTFOUND', 'getaddrinfo', hostname), known); });
    return;
  }
  if (!nameLabels(hostname)) {
    const e = dnsError('ENOTFOUND', 'getaddrinfo', String(hostname), 'not a hostname');
    setTimeoutOnce(function () { cb(e, []); });
    return;
  }
  const as = function (f: number, list: string[]): LookupAddress[] {
    const out: LookupAddress[] = [];
    for (let i = 0; i < list.length; i++) out.push({ address: list[i], family: f });
    return out;
  };
  const six = function (): void {
    query(hostname, TYPE_AAAA, 'getaddrinfo', function (err, list) {
      cb(err ? dnsError(err.code === 'ENODATA' ? 'ENOTFOUND' : err.code, 'getaddrinfo', hostname) : null, as(6, list));
    });
  };
  if (family === 6) {
    six();
    return;
  }
  query(hostname, TYPE_A, 'getaddrinfo', function (err, list) {
    if (!err) cb(null, as(4, list));
    else if (family === 0 && err.code === 'ENODATA') six();
    else cb(dnsError(err.code === 'ENODATA' ? 'ENOTFOUND' : err.code, 'getaddrinfo', hostname), []);
  });
}

function familyOf(options: number | LookupOptions | undefined): { family: number; all: boolean } {
  const o = typeof options === 'number' ? { family: options } : options || {};
  const family = o.family === undefined || o.family === null ? 0 : Number(o.family);
  if (family !== 0 && family !== 4 && family !== 6) throw codedError('ERR_INVALID_ARG_VALUE', 'dns.lookup: family must be 0, 4 or 6');
  return { family, all: !!o.all };
}

/**
 * lookup(hostname[, family | { family, all }], callback): callback(err, address, family), or
 * callback(err, [{ address, family }]) with `all`.
 */
export function lookup(
  hostname: string,
  options: number | LookupOptions | undefined | ((err: Error | null, address?: any, family?: number) => void),
  callback?: (err: Error | null, address?: any, family?: number) => void,
): void {
  const cb = (typeof options === 'function' ? options : callback) as (err: Error | null, address?: any, family?: number) => void;
  if (typeof cb !== 'function') throw codedError('ERR_INVALID_ARG_TYPE', 'dns.lookup: the callback must be a function');
  const o = familyOf(typeof options === 'function' ? undefined : options);
  lookupAll(String(hostname), o.family, function (err, all) {
    if (err) cb(err);
    else if (o.all) cb(null, all);
    else cb(null, all[0].address, all[0].family);
  });
}

function resolveWith(type: number, syscall: string) {
  return function (hostname: string, callback: (err: Error | null, addresses?: string[]) => void): void {
    const f = type === TYPE_A ? 4 : 6;
    if (isIP(hostname) === f) {
      setTimeoutOnce(function () { callback(null, [hostname]); });
      return;
    }
    if (!nameLabels(hostname)) {
      const e = dnsError('EBADNAME', syscall, String(hostname));
      setTimeoutOnce(function () { callback(e); });
      return;
    }
    query(hostname, type, syscall, function (err, list) {
      if (err) callback(err);
      else callback(null, list);
    });
  };
}

/** resolve4(hostname, callback(err, addresses)): the A records, asked of the servers. */
export const resolve4 = resolveWith(TYPE_A, 'queryA');
/** resolve6(hostname, callback(err, addresses)): the AAAA records. */
export const resolve6 = resolveWith(TYPE_AAAA, 'queryAaaa');

/** dns.promises: the same calls returning Promises. */
export const promises = {
  lookup: function (hostname: string, options?: number | LookupOptions): Promise<LookupAddress | LookupAddress[]> {
    return new Promise(function (resolve, reject) {
      lookup(hostname, options === undefined ? {} : options, function (err, address, family) {
        if (err) reject(err);
        else resolve(typeof address === 'string' ? { address, family: family as number } : (address as LookupAddress[]));
      });
    });
  },
  resolve4: function (hostname: string): Promise<string[]> {
    return new Promise(function (resolve, reject) {
      resolve4(hostname, function (err, a) { if (err) reject(err); else resolve(a as string[]); });
    });
  },
  resolve6: function (hostname: string): Promise<string[]> {
    return new Promise(function (resolve, reject) {
      resolve6(hostname, function (err, a) { if (err) reject(err); else resolve(a as string[]); });
    });
  },
  getServers,
  setServers,
};
