/**
 * A seeded HTTP/1.1 fuzzer for the update server: batches of pipelined requests on real TLS
 * connections (many parseable requests with odd targets, methods, headers and bodies, then
 * often one that breaks the connection: a malformed request line or header, a bad chunked
 * body, a truncated request, raw garbage), plus raw TCP connections that send garbage or
 * truncated TLS records. Every request must be answered or its connection closed by the
 * server; a connection that gets neither within a bound is a hang.
 *
 * Used by tests/server-fuzz.test.ts and bench/attack.ts.
 */
import { mulberry32, type Rng } from './prng';
import { connectTcp, connectTls, exchangeOn, type ClientIdentity } from './raw-https';

export type { Rng } from './prng';

/** The fuzzer's seeded PRNG (mulberry32). */
export const seeded: (seed: number) => Rng = mulberry32;

const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const int = (r: Rng, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const VISIBLE = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&\'()*+,;=:@/?%[]{}|\\^`"<>#';
function visible(r: Rng, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += VISIBLE[Math.floor(r() * VISIBLE.length)];
  return s;
}
function bytes(r: Rng, n: number): Buffer {
  const b: Buffer = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

const PATHS = [
  '/healthz', '/tuf/metadata/timestamp.json', '/tuf/metadata/1.root.json', '/tuf/metadata/snapshot.json', '/tuf/metadata/9999.targets.json',
  '/tuf/targets/' + 'ab'.repeat(32) + '.app.simg', '/api/v1/checkin', '/api/v1/report', '/api/v1/targets', '/api/v1/rollouts',
  '/api/v1/rollouts/r1', '/api/v1/rollouts/r1/pause', '/api/v1/rollouts/r1/promote', '/api/v1/devices', '/api/v1/devices/fz-1/revoke',
  '/api/v1/blobs/' + '0'.repeat(64), '/api/v1/publish', '/api/v1/root', '/dashboard', '/dashboard/', '/metrics', '/nope', '/',
];
const ODD_TARGETS = [
  '//[', '//x:99999', 'http://[', '//%', '/%', '/%zz', '/..', '/../../etc/passwd', '/a/./b/../../healthz', '/healthz/', '/HEALTHZ',
  'http://localhost/healthz', 'https://x:1/tuf/metadata/timestamp.json', 'http://x:99999/', 'https://[::1]/healthz', '/;a', '/@',
  '/healthz?' + 'a=1&'.repeat(200), '/healthz?%', '/healthz?%ff%fe', '/tuf/targets/' + 'x'.repeat(500), '/' + 'a/'.repeat(300),
  '/api/v1/rollouts/r99999999999', '/api/v1/devices/' + '.'.repeat(64) + '/revoke', '/tuf/metadata/' + 'A'.repeat(41),
];
/** Without a body: answered and the connection kept (a refusal of a request with an unread body closes it). */
const METHODS = ['GET', 'GET', 'GET', 'GET', 'HEAD', 'DELETE', 'OPTIONS', 'PROPFIND', 'PURGE'];
const BODY_METHODS = ['POST', 'POST', 'POST', 'PUT', 'PATCH'];
const HEADER_NAMES = ['Accept', 'Range', 'If-Range', 'Content-Type', 'Origin', 'Sec-Fetch-Site', 'User-Agent', 'X-Forwarded-For', 'Cookie', 'Authorization', 'Accept-Encoding', 'Expect', 'X-' + 'h'.repeat(40)];
const RANGES = ['bytes=0-0', 'bytes=-1', 'bytes=5-', 'bytes=99999999999-', 'bytes=0-1,2-3', 'bytes=-0', 'bytes=a-b', 'items=0-1', 'bytes=3-1', ''];
const CONTENT_TYPES = ['application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', ''];

function headerValue(r: Rng, name: string): string {
  if (name === 'Range') return pick(r, RANGES);
  if (name === 'If-Range') return pick(r, ['"' + 'ab'.repeat(32) + '"', 'W/"x"', 'Tue, 01 Jan 2030 00:00:00 GMT', '']);
  if (name === 'Content-Type') return pick(r, CONTENT_TYPES);
  if (name === 'Origin') return pick(r, ['https://evil.example', 'null', 'https://localhost:8443', '']);
  if (name === 'Sec-Fetch-Site') return pick(r, ['cross-site', 'same-origin', 'none', 'same-site']);
  if (name === 'Expect') return pick(r, ['100-continue', 'nothing']);
  return visible(r, int(r, 0, 60)).replace(/[^\x21-\x7e]/g, '');
}

function body(r: Rng): Buffer {
  switch (int(r, 0, 5)) {
    case 0: return Buffer.from(JSON.stringify({ board: 'qemu-virt-arm64', version: '1.2.0', securityCounter: int(r, 0, 9), slot: pick(r, ['a', 'b', 'c']) }));
    case 1: return Buffer.from(JSON.stringify({ rollout: 'r' + int(r, 0, 3), status: pick(r, ['failed', 'confirmed', 'bogus']), code: 'E_FUZZ' }));
    case 2: return Buffer.from('{"board":' + visible(r, int(r, 0, 20)));
    case 3: return Buffer.from(JSON.stringify({ board: 'qemu-virt-arm64', version: '9.9.9', percent: int(r, -5, 200), haltFailureRate: r() }));
    case 4: return bytes(r, int(r, 0, 300));
    default: return Buffer.alloc(0);
  }
}

function chunked(b: Buffer, r: Rng): Buffer {
  const parts: Buffer[] = [];
  let off = 0;
  while (off < b.length) {
    const n = Math.min(b.length - off, int(r, 1, 64));
    parts.push(Buffer.from(n.toString(16) + (r() < 0.1 ? ';ext=' + visible(r, 5).replace(/[^a-z0-9]/gi, '') : '') + '\r\n'), b.subarray(off, off + n), Buffer.from('\r\n'));
    off += n;
  }
  parts.push(Buffer.from('0\r\n' + (r() < 0.2 ? 'X-Trailer: t\r\n' : '') + '\r\n'));
  return Buffer.concat(parts);
}

export interface Req {
  bytes: Buffer;
  head: boolean;
}

/** A request Node can parse: the connection stays usable after its answer. */
export function parseableRequest(r: Rng, withBody = false): Req {
  const method = withBody ? pick(r, BODY_METHODS) : pick(r, METHODS);
  let target = r() < 0.25 ? pick(r, ODD_TARGETS) : pick(r, PATHS);
  if (r() < 0.2) target += (target.includes('?') ? '&' : '?') + 'token=' + visible(r, 8).replace(/[^a-z0-9]/gi, 'x');
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: ' + pick(r, ['localhost', 'localhost:8443', '127.0.0.1', 'ota.example.com'])];
  for (let i = int(r, 0, 5); i > 0; i--) {
    const name = pick(r, HEADER_NAMES);
    lines.push(`${name}: ${headerValue(r, name)}`);
  }
  let payload: Buffer = Buffer.alloc(0);
  if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
    const b = body(r);
    if (r() < 0.3) {
      lines.push('Transfer-Encoding: chunked');
      payload = chunked(b, r);
    } else {
      lines.push('Content-Length: ' + b.length);
      payload = b;
    }
  }
  return { bytes: Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), payload]), head: method === 'HEAD' };
}

/** A request after which the server may (or must) close the connection. */
export function breakingRequest(r: Rng): Req {
  const ok = () => parseableRequest(r).bytes.toString('latin1');
  const kinds: (() => string | Buffer)[] = [
    () => `${pick(r, ['G\x00T', 'GET GET', 'BREW', '', ' GET', 'M'.repeat(int(r, 20, 300))])} /healthz HTTP/1.1\r\nHost: x\r\n\r\n`,
    () => `GET ${pick(r, ['/a b', '/\x01', '/\x7f', '/\u00e9', '*', 'localhost:443', '', '/healthz HTTP/1.1 extra'])} HTTP/1.1\r\nHost: x\r\n\r\n`,
    () => `GET /healthz ${pick(r, ['HTTP/9.9', 'HTTP/1', 'HTTPS/1.1', 'HTTP/1.1x', '', 'http/1.1'])}\r\nHost: x\r\n\r\n`,
    () => `GET /healthz HTTP/1.1\r\nHost: x\r\n${pick(r, ['Nocolon', ' folded: x', 'Bad Name: x', 'X-A: a\x00b', 'X-A: a\rb', ': empty', 'X-\x7f: x'])}\r\n\r\n`,
    () => `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(int(r, 17_000, 70_000))}\r\n\r\n`,
    () => 'GET /healthz HTTP/1.1\r\nHost: x\r\n' + Array.from({ length: int(r, 500, 3000) }, (_, i) => `X-${i}: v`).join('\r\n') + '\r\n\r\n',
    () => `POST /api/v1/checkin HTTP/1.1\r\nHost: x\r\nContent-Length: ${pick(r, ['-1', '1e3', '0x10', '99999999999999999999', '1, 2', ' '])}\r\n\r\n{}`,
    () => 'POST /api/v1/checkin HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}',
    () => 'POST /api/v1/checkin HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    () => `POST /api/v1/checkin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${pick(r, ['zz', 'ffffffffffffffffff', '-1', '2', '1;' + 'e'.repeat(20_000), ''])}\r\nab\r\n0\r\n\r\n`,
    () => `POST /api/v1/checkin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ${pick(r, ['gzip', 'chunked, gzip', 'identity', 'chunked\r\nTransfer-Encoding: chunked'])}\r\n\r\n0\r\n\r\n`,
    () => `GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: ${int(r, 1, 1_000_000_000)}\r\n\r\nxyz`,
    () => `POST /api/v1/checkin HTTP/1.1\r\nHost: x\r\nContent-Length: ${int(r, 10, 5000)}\r\n\r\n{"a":`, // a body that never comes
    () => ok().slice(0, int(r, 1, 30)), // a request cut off
    () => 'GET /healthz HTTP/1.1\nHost: x\n\n', // bare LF
    () => 'CONNECT localhost:443 HTTP/1.1\r\nHost: x\r\n\r\n',
    () => 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
    () => bytes(r, int(r, 1, 400)),
  ];
  const b = pick(r, kinds)();
  return { bytes: typeof b === 'string' ? Buffer.from(b, 'latin1') : b, head: false };
}

/** Garbage or a TLS record cut off, for a raw TCP connection. */
export function tlsGarbage(r: Rng): Buffer {
  switch (int(r, 0, 4)) {
    case 0: return bytes(r, int(r, 1, 600));
    case 1: { // a handshake record that claims more than it brings
      const body = bytes(r, int(r, 0, 200));
      body[0] = 1; // ClientHello
      return Buffer.concat([Buffer.from([0x16, 0x03, int(r, 0, 4), int(r, 0, 255), int(r, 0, 255)]), body]);
    }
    case 2: return Buffer.concat([Buffer.from([pick(r, [0x14, 0x15, 0x17, 0x18, 0x80]), 0x03, 0x03, 0x00, 0x20]), bytes(r, 32)]);
    case 3: return Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'); // plain HTTP to the TLS port
    default: return Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0x3f, 0xfc, 0x03, 0x03]); // a big ClientHello, 11 bytes of it
  }
}

export interface FuzzStats {
  /** HTTP requests sent. */
  requests: number;
  /** Answered with a response. */
  answered: number;
  /** Not answered because the server closed their connection (after a bad request before them, or a deadline). */
  closed: number;
  /** Connections that got neither all answers nor a close within the bound: must be 0. */
  hung: number;
  /** Raw TCP connections with garbage or a truncated TLS record; each must be closed. */
  tlsGarbage: number;
  tlsGarbageClosed: number;
  statuses: Record<number, number>;
}

export interface FuzzOptions {
  port: number;
  seed: number;
  /** Stop once this many HTTP requests were sent. */
  requests: number;
  connections: number;
  /** Client identities to use (a third of connections go without one). */
  ids: ClientIdentity[];
  /** Raw garbage connections, mixed in. */
  garbage: number;
  /** Source address for the fuzzer's connections. */
  localAddress?: string;
  boundMs?: number;
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzStats> {
  const st: FuzzStats = { requests: 0, answered: 0, closed: 0, hung: 0, tlsGarbage: 0, tlsGarbageClosed: 0, statuses: {} };
  const master = seeded(o.seed);
  const garbage = async (r: Rng) => {
    st.tlsGarbage++;
    const s = await connectTcp(o.port, { localAddress: o.localAddress });
    const x = await exchangeOn(s, tlsGarbage(r), 1, { boundMs: o.boundMs });
    if (x.closed) st.tlsGarbageClosed++;
    else if (x.hung) st.hung++;
  };
  const worker = async (w: number) => {
    const r = seeded(Math.floor(master() * 2 ** 32) ^ w);
    while (st.requests < o.requests) {
      // Bodyless requests first (each answered, the connection kept), then a few with bodies
      // (a refusal before reading a body closes the connection), then maybe one that breaks it.
      const reqs: Req[] = [];
      for (let i = int(r, 10, 80); i > 0; i--) reqs.push(parseableRequest(r));
      for (let i = int(r, 0, 3); i > 0; i--) reqs.push(parseableRequest(r, true));
      if (r() < 0.6) reqs.push(breakingRequest(r));
      st.requests += reqs.length;
      const id = r() < 0.34 ? null : pick(r, o.ids);
      let socket;
      try {
        socket = await connectTls(o.port, { id, localAddress: o.localAddress });
      } catch {
        st.closed += reqs.length; // refused at the handshake: closed by the server
        continue;
      }
      const x = await exchangeOn(socket, Buffer.concat(reqs.map((q) => q.bytes)), reqs.length, { heads: reqs.map((q) => q.head), boundMs: o.boundMs });
      for (const res of x.responses) st.statuses[res.status] = (st.statuses[res.status] ?? 0) + 1;
      st.answered += x.responses.length;
      if (x.hung) st.hung++;
      else st.closed += reqs.length - x.responses.length;
    }
  };
  // The garbage connections run alongside, a few at a time (most wait for the handshake deadline).
  const garbageWorker = async (w: number) => {
    const r = seeded(o.seed ^ (0x9e3779b9 * (w + 1)));
    for (let i = w; i < o.garbage; i += 16) await garbage(r);
  };
  await Promise.all([
    ...Array.from({ length: o.connections }, (_, w) => worker(w)),
    ...Array.from({ length: Math.min(16, o.garbage) }, (_, w) => garbageWorker(w)),
  ]);
  return st;
}
