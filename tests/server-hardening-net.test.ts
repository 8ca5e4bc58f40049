/**
 * The update server's HTTPS layer under a misbehaving client (issue 10 findings 1, 4, 6 and the
 * access log of 8): a real `signet server` process or the real startServer path, real TLS on
 * loopback, a real SQLite file, raw bytes from tests/helpers/raw-https.ts and `openssl s_client`.
 *
 * Deadlines are configured small so the tests run fast; every assertion is about an outcome
 * (an answer, a connection the server closed), never about how long something took. Each wait
 * has a generous bound only so that a server that never closes fails the test instead of
 * hanging it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Identity } from '../sdk/keys/device';
import { startServer, type Running } from '../update-server/start';
import { addressKey, TokenBuckets, type ServerLimits } from '../update-server/limits';
import { CLI, expectOneLineError } from './helpers/cli';
import { closedByServer, connectTcp, connectTls, exchange, exchangeOn } from './helpers/raw-https';
import { call, enroll, makeRepoKeys, publishImage, quickDevices, releaseImage, signetAsync, tempDir, type RepoKeys } from './server-fixture';

let work: string;
let k: RepoKeys;
let admin: Identity;
let devices: Identity[];
const children: ChildProcess[] = [];
const running: Running[] = [];
const CHECKIN = { board: 'qemu-virt-arm64', version: '1.2.0', securityCounter: 3, slot: 'a' };

beforeAll(async () => {
  work = tempDir('signet-net-');
  k = await makeRepoKeys(work);
  admin = await enroll(k, work, 'ops', true);
  devices = quickDevices(k, ['tv-1', 'tv-2', 'tv-3']);
});

afterAll(async () => {
  for (const r of running) await r.close().catch(() => undefined);
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

let serial = 0;
/** The real startServer path (TLS, SQLite, the app) with some limits made small. */
async function server(limits: Partial<ServerLimits> = {}, accessLog: 'file' | 'off' = 'off'): Promise<Running & { port: number; data: string }> {
  const data = join(work, 'data-' + serial++);
  const r = await startServer({ dataDir: data, keysDir: k.serverKeys, port: 0, limits, accessLog });
  running.push(r);
  return Object.assign(r, { port: r.listening.port, data });
}

/** `signet server` as a child process; resolves with its port once it listens. */
function child(): Promise<{ proc: ChildProcess; port: number; url: string }> {
  const proc = spawn(process.execPath, [CLI, 'server', '--data', join(work, 'child-data-' + serial++), '--keys', k.serverKeys, '--port', '0', '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SIGNET_PASSPHRASE: '' },
  });
  children.push(proc);
  proc.stderr!.resume(); // the access log goes there; keep the pipe drained
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        const j = JSON.parse(out.slice(0, nl)) as { url: string; port: number };
        resolve({ proc, port: j.port, url: j.url });
      }
    });
    proc.on('exit', (code, sig) => reject(new Error(`signet server exited (${code ?? sig}) before listening`)));
  });
}

const get = (target: string, extra = '') => `GET ${target} HTTP/1.1\r\nHost: localhost\r\n${extra}\r\n`;

describe('finding 1: nothing a client sends kills the server', () => {
  it('request targets, headers and bodies the server cannot take end as 4xx or a closed connection; the process stays up', async () => {
    const { proc, port, url } = await child();
    const cases: [string, string | Buffer][] = [
      ['//[', get('//[')],
      ['//x:99999', get('//x:99999')],
      ['http://[', get('http://[')],
      ['//%', get('//%')],
      ['http://x:99999/healthz', get('http://x:99999/healthz')],
      ['https://[::1/', get('https://[::1/')],
      ['* (asterisk form)', 'OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n'],
      ['authority form', get('localhost:443')],
      ['scheme only', get('http:')],
      ['\\\\ backslashes', get('/\\\\x:99999/')],
      ['query junk', get('/healthz?%zz=%&a=%E0%A4%A&&=')],
      ['oversized header', get('/healthz', 'X-Big: ' + 'a'.repeat(70_000) + '\r\n')],
      ['header without colon', get('/healthz', 'Nonsense\r\n')],
      ['control byte in a header', get('/healthz', 'X-A: a\x01b\r\n')],
      ['space before colon', get('/healthz', 'X-A : b\r\n')],
      ['two content lengths', 'POST /api/v1/checkin HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'],
      ['negative content length', 'POST /api/v1/checkin HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n'],
      ['content length and chunked', 'POST /api/v1/checkin HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
      ['bad chunk size', 'POST /api/v1/checkin HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n'],
      ['chunk longer than its size', 'POST /api/v1/checkin HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcdef\r\n0\r\n\r\n'],
      ['unknown transfer coding', 'POST /api/v1/checkin HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n'],
      ['unknown method', 'BREW /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n'],
      ['CONNECT', 'CONNECT localhost:443 HTTP/1.1\r\nHost: localhost\r\n\r\n'],
      ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
      ['HTTP/9.9', 'GET / HTTP/9.9\r\nHost: localhost\r\n\r\n'],
      ['no Host', 'GET /healthz HTTP/1.1\r\n\r\n'],
      ['binary garbage', Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 0xff))],
    ];
    for (const [name, bytes] of cases) {
      const r = await exchange(port, bytes, 1);
      expect(r.hung, name).toBe(false);
      // A refusal (4xx; 501/505 for what HTTP/1.1 does not do), never a 500 or a 2xx.
      for (const res of r.responses) expect((res.status >= 400 && res.status < 500) || res.status === 501 || res.status === 505, `${name}: ${res.status}`).toBe(true);
      expect(r.responses.length > 0 || r.closed, name).toBe(true);
      expect(proc.exitCode, `the server process exited after: ${name}`).toBeNull();
    }
    // The named ones are plain 400s, not a closed connection.
    for (const t of ['//[', '//x:99999', 'http://[', '//%']) {
      const r = await exchange(port, get(t), 1);
      expect(r.responses.map((x) => x.status), t).toEqual([400]);
      expect(JSON.parse(r.responses[0].body.toString()).error.code, t).toBe('E_BAD_REQUEST');
    }
    const health = await call(url + '/healthz', { ca: k.ca.certPem });
    expect(health.status).toBe(200);
    expect(proc.exitCode).toBeNull();
  });

  it('TLS garbage, a half handshake and a client certificate the CA never issued do not kill it either', async () => {
    const { proc, port, url } = await child();
    for (const bytes of [
      Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00]), // a ClientHello record that claims 64 KiB and stops
      Buffer.from([0x17, 0x03, 0x03, 0x00, 0x10, ...new Array(16).fill(0)]), // application data before any handshake
      Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'), // plain HTTP to the TLS port
    ]) {
      const s = await connectTcp(port);
      s.write(bytes);
      s.end();
      expect(await closedByServer(s)).toBe(true);
    }
    const foreign = quickDevices(await makeRepoKeys(join(work, 'other')), ['intruder'])[0];
    const r = await call(url + '/api/v1/checkin', { ca: k.ca.certPem, id: foreign, body: CHECKIN });
    expect(r.status).toBe(401);
    expect((await call(url + '/healthz', { ca: k.ca.certPem })).status).toBe(200);
    expect(proc.exitCode).toBeNull();
  });
});

/** Poll until `f()` holds; false when it never did within the bound (never a timing claim). */
async function eventually(f: () => boolean | Promise<boolean>, boundMs = 20_000): Promise<boolean> {
  const until = Date.now() + boundMs;
  while (Date.now() < until) {
    if (await f()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

function connections(r: Running): Promise<number> {
  return new Promise((resolve) => r.listening.server.getConnections((_e, n) => resolve(n)));
}

describe('finding 4: every phase of a connection is bounded', () => {
  it('a TCP connection that never sends a TLS hello is closed by the server', async () => {
    const s = await server({ handshakeTimeoutMs: 200 });
    expect(await closedByServer(await connectTcp(s.port))).toBe(true);
  });

  it('a TLS connection that never sends a request is closed by the server', async () => {
    const s = await server({ headersTimeoutMs: 200, checkIntervalMs: 50 });
    expect(await closedByServer(await connectTls(s.port, { id: devices[0] }))).toBe(true);
  });

  it('headers that keep trickling in are cut off', async () => {
    const s = await server({ headersTimeoutMs: 300, checkIntervalMs: 50, idleTimeoutMs: 60_000 });
    const c = await connectTls(s.port);
    c.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n');
    let n = 0;
    const drip = setInterval(() => !c.destroyed && c.write(`X-Drip-${n++}: a\r\n`), 40);
    const closed = await closedByServer(c);
    clearInterval(drip);
    expect(closed).toBe(true);
  });

  it('a request body that falls below the minimum rate closes the connection', async () => {
    const s = await server({ bodyGraceMs: 200, bodyMinBytesPerS: 100 });
    const c = await connectTls(s.port, { id: devices[0] });
    c.write('POST /api/v1/checkin HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{');
    const drip = setInterval(() => !c.destroyed && c.write(' '), 40); // 25 B/s
    const closed = await closedByServer(c);
    clearInterval(drip);
    expect(closed).toBe(true);
  });

  it('an idle kept-alive connection is closed after its response, and one connection serves a bounded number of requests', async () => {
    const s = await server({ keepAliveTimeoutMs: 200, maxRequestsPerSocket: 2 });
    const c = await connectTls(s.port);
    const first = await exchangeOn(c, get('/healthz'), 1, { keepOpen: true });
    expect(first.responses.map((r) => r.status)).toEqual([200]);
    expect(await closedByServer(c)).toBe(true);
    // Four pipelined: two answered, the rest refused (503) or never read, and the server closes.
    const piped = await exchange(s.port, get('/healthz').repeat(4), 5);
    expect(piped.responses.map((r) => r.status).slice(0, 2)).toEqual([200, 200]);
    expect(piped.responses.slice(2).every((r) => r.status === 503)).toBe(true);
    expect(piped.closed).toBe(true);
  });

  it('GET /healthz announcing a gigabyte body is refused without reading it', async () => {
    const s = await server();
    const c = await connectTls(s.port);
    let sent = 0;
    const r = await exchangeOn(c, get('/healthz', 'Content-Length: 1000000000\r\n') + 'x'.repeat(65_536), 1, { keepOpen: true });
    expect(r.responses.map((x) => x.status)).toEqual([400]);
    expect(r.responses[0].headers.connection).toBe('close');
    // Keep offering the body: the server closes instead of reading it.
    const pump = setInterval(() => {
      if (!c.destroyed && c.writableLength < 1 << 20) {
        c.write(Buffer.alloc(65_536, 120));
        sent += 65_536;
      }
    }, 5);
    const closed = await closedByServer(c);
    clearInterval(pump);
    expect(closed).toBe(true);
    expect(sent).toBeLessThan(1_000_000_000);
  });

  it('bodies beyond the caps are refused: 413 before reading past the cap, or at once past the server-wide cap', async () => {
    const s = await server({ maxBodyBytes: 1_000_000 });
    const big = await exchange(s.port, 'POST /api/v1/checkin HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n', 1, { id: devices[0] });
    expect(big.responses.map((x) => x.status)).toEqual([413]);
    const capped = await exchange(s.port, 'POST /api/v1/checkin HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 500000\r\n\r\n' + '{"a":"' + 'x'.repeat(499_990) + '"}', 1, { id: devices[0] });
    expect(capped.responses.map((x) => x.status)).toEqual([413]); // the check-in's own 64 KiB cap
  });

  it('connections are capped in total and per client address; other addresses still get in', async () => {
    const s = await server({ maxConnections: 6, maxConnectionsPerAddress: 3 });
    const held = [await connectTcp(s.port), await connectTcp(s.port), await connectTcp(s.port)];
    // A fourth from 127.0.0.1 is closed at once; 127.0.0.2 is another client and gets in.
    expect(await closedByServer(await connectTcp(s.port))).toBe(true);
    const other = await exchange(s.port, get('/healthz', 'Connection: close\r\n'), 1, { localAddress: '127.0.0.2' });
    expect(other.responses.map((x) => x.status)).toEqual([200]);
    held.push(await connectTcp(s.port, { localAddress: '127.0.0.3' }), await connectTcp(s.port, { localAddress: '127.0.0.3' }),
      await connectTcp(s.port, { localAddress: '127.0.0.4' }));
    expect(await eventually(async () => (await connections(s)) === 6)).toBe(true);
    // Six open: the seventh is closed whoever it is from.
    expect(await closedByServer(await connectTcp(s.port, { localAddress: '127.0.0.5' }))).toBe(true);
    for (const h of held) h.destroy();
    expect(await eventually(async () => (await exchange(s.port, get('/healthz', 'Connection: close\r\n'), 1)).responses[0]?.status === 200)).toBe(true);
  });

  it('downloads whose reader stops reading are closed', async () => {
    const s = await server({ writeStallMs: 200 });
    const image = await releaseImage(k, { version: '1.3.0', securityCounter: 4, appBytes: 24 << 20 });
    const pub = await publishImage(k, s.url, admin, image, work);
    const readers: TLSSocket[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await connectTls(s.port, { id: devices[i] });
      c.write(get('/tuf/targets/' + pub.path));
      c.pause(); // and never read
      readers.push(c);
    }
    expect(await eventually(async () => (await connections(s)) === 0)).toBe(true);
    for (const c of readers) {
      let got = 0;
      c.on('data', (d: Buffer) => (got += d.length));
      expect(await closedByServer(c)).toBe(true);
      expect(got).toBeLessThan(image.length);
    }
  });

  it('one kept-alive connection carrying many requests with bodies piles up no listeners on its socket', async () => {
    const s = await server({ deviceBurst: 1000 });
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const c = await connectTls(s.port, { id: devices[0] });
      const body = JSON.stringify(CHECKIN);
      const post = `POST /api/v1/checkin HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
      for (let i = 0; i < 25; i++) {
        // Headers and body in two writes, so the body is still unread when the request starts.
        const answer = exchangeOn(c, post, 1, { keepOpen: true });
        await new Promise((r) => setImmediate(r));
        c.write(body);
        expect((await answer).responses.map((r) => r.status)).toEqual([200]);
      }
      c.destroy();
      await new Promise((r) => setTimeout(r, 50)); // warnings are emitted on the next tick
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => w.includes('MaxListeners'))).toEqual([]);
  });

  it('a device checking in or reporting beyond its token bucket gets 429 with Retry-After; other devices do not', async () => {
    const s = await server({ deviceBurst: 3, deviceRatePerS: 0.01 });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await call(s.url + '/api/v1/checkin', { ca: k.ca.certPem, id: devices[0], body: CHECKIN })).status);
    expect(statuses).toEqual([200, 200, 200]);
    const limited = await call(s.url + '/api/v1/checkin', { ca: k.ca.certPem, id: devices[0], body: CHECKIN });
    expect(limited.status).toBe(429);
    expect(limited.json().error.code).toBe('E_RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    const report = await call(s.url + '/api/v1/report', { ca: k.ca.certPem, id: devices[0], body: { rollout: 'r1', status: 'failed', code: 'E_X' } });
    expect(report.status).toBe(429);
    expect((await call(s.url + '/api/v1/checkin', { ca: k.ca.certPem, id: devices[1], body: CHECKIN })).status).toBe(200);
    // Requests without a verified device certificate spend nobody's tokens.
    for (let i = 0; i < 5; i++) expect((await call(s.url + '/api/v1/checkin', { ca: k.ca.certPem, body: CHECKIN })).status).toBe(401);
    expect((await call(s.url + '/api/v1/checkin', { ca: k.ca.certPem, id: devices[2], body: CHECKIN })).status).toBe(200);
  });
});

/** `openssl s_client` against the server: its output once it exits (stdin feeds it commands). */
function sClient(port: number, args: string[], script: (p: ChildProcess, out: () => string) => Promise<void> = async (p) => void p.stdin!.end()): Promise<string> {
  return new Promise((resolve) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString('latin1')));
    p.stderr!.on('data', (d: Buffer) => (out += d.toString('latin1')));
    p.stdin!.on('error', () => undefined);
    const bound = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('close', () => {
      clearTimeout(bound);
      resolve(out);
    });
    void script(p, () => out);
  });
}

/** The suite s_client ended up with, or null when the handshake failed. */
function negotiated(out: string): string | null {
  const m = /Cipher is (\S+)/.exec(out);
  return m && m[1] !== '(NONE)' ? m[1] : null;
}

describe('finding 6: TLS 1.3 and TLS 1.2 ECDHE-AEAD only, no renegotiation, HSTS', () => {
  it('refuses CBC, SHA-1, non-ECDHE suites and TLS 1.1; takes ECDHE-AEAD on TLS 1.2 and TLS 1.3', async () => {
    const s = await server();
    for (const suite of ['AES128-SHA', 'ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-AES256-SHA384', 'AES128-GCM-SHA256', 'DHE-RSA-AES128-GCM-SHA256', 'DHE-RSA-CHACHA20-POLY1305']) {
      expect(negotiated(await sClient(s.port, ['-tls1_2', '-cipher', suite + ':@SECLEVEL=0'])), suite).toBeNull();
    }
    expect(negotiated(await sClient(s.port, ['-tls1_1', '-cipher', 'ALL:@SECLEVEL=0']))).toBeNull();
    for (const suite of ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305']) {
      expect(negotiated(await sClient(s.port, ['-tls1_2', '-cipher', suite])), suite).toBe(suite);
    }
    expect(negotiated(await sClient(s.port, ['-tls1_3']))).toMatch(/^TLS_/);
  });

  it('a client-initiated renegotiation (s_client R in TLS 1.2) ends the connection; no request is served after it', async () => {
    const s = await server();
    const out = await sClient(s.port, ['-tls1_2'], async (p, seen) => {
      if (!(await eventually(() => /Verify return code/.test(seen())))) return;
      p.stdin!.write('R\n');
      if (!(await eventually(() => /RENEGOTIATING/.test(seen())))) return;
      p.stdin!.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    expect(out).toMatch(/RENEGOTIATING/);
    expect(out).not.toMatch(/HTTP\/1\.1 200/);
  });

  it('HTML responses carry Strict-Transport-Security (not for a localhost name)', async () => {
    const s = await server();
    const dashboard = (host: string) => `GET /dashboard HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
    const [page] = (await exchange(s.port, dashboard('ota.example.com'), 1, { id: admin })).responses;
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['strict-transport-security']).toMatch(/^max-age=\d{7,}$/);
    const [json] = (await exchange(s.port, get('/healthz'), 1)).responses;
    expect(json.headers['content-type']).toMatch(/^application\/json/);
    const [local] = (await exchange(s.port, dashboard('localhost:8443'), 1, { id: admin })).responses;
    expect(local.status).toBe(200);
    expect(local.headers['strict-transport-security']).toBeUndefined();
  });
});

describe('finding 8 (access log): one JSON line per request, no secrets', () => {
  it('logs time, identity, method, route, status, bytes, ms and client address; never a query string', async () => {
    const s = await server({}, 'file');
    await call(s.url + '/api/v1/checkin?token=SECRET-CHECKIN-TOKEN', { ca: k.ca.certPem, id: devices[0], body: CHECKIN });
    await call(s.url + '/api/v1/rollouts', { ca: k.ca.certPem, id: admin });
    await call(s.url + '/healthz?access_token=SECRET-QUERY', { ca: k.ca.certPem });
    await call(s.url + '/nope', { ca: k.ca.certPem, headers: { authorization: 'Bearer SECRET-HEADER' } });
    await exchange(s.port, get('//['), 1, { localAddress: '127.0.0.9' });
    await s.close();
    const file = join(s.data, 'access.log');
    const text = readFileSync(file, 'utf8');
    expect(text).not.toMatch(/SECRET/);
    const lines = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const byRoute = (a: unknown[], b: unknown[]) => String(a[2]).localeCompare(String(b[2]));
    expect(lines.map((l) => [l.identity, l.method, l.route, l.status, l.client]).sort(byRoute)).toEqual([
      ['device:tv-1', 'POST', '/api/v1/checkin', 200, '127.0.0.1'],
      ['admin:ops', 'GET', '/api/v1/rollouts', 200, '127.0.0.1'],
      ['anonymous', 'GET', '/healthz', 200, '127.0.0.1'],
      ['anonymous', 'GET', '/nope', 404, '127.0.0.1'],
      ['anonymous', 'GET', '//[', 400, '127.0.0.9'],
    ].sort(byRoute));
    for (const l of lines) {
      expect(Object.keys(l)).toEqual(['time', 'identity', 'method', 'route', 'status', 'bytes', 'ms', 'client']);
      expect(new Date(l.time as string).toISOString()).toBe(l.time);
      expect(l.bytes).toBeGreaterThan(0);
      expect(typeof l.ms).toBe('number');
    }
    expect(readFileSync(file).length).toBeGreaterThan(0);
    const { statSync } = await import('node:fs');
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });
});

describe('limits: configuration and the pieces', () => {
  it('`signet server --limit` and `--access-log` refuse what they cannot take with one line, before starting', async () => {
    for (const bad of [['--limit', 'nope=1'], ['--limit', 'max-connections=0'], ['--limit', 'write-stall-ms=abc'], ['--access-log', 'syslog']]) {
      const r = await signetAsync(['server', '--data', join(work, 'never'), '--keys', k.serverKeys, '--port', '0', ...bad]);
      expectOneLineError(r, 'E_USAGE');
    }
  });

  it('counts IPv4 (also IPv4-mapped) per address and IPv6 per /64', () => {
    expect(addressKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(addressKey('192.0.2.7')).toBe('192.0.2.7');
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe(addressKey('2001:0db8:0001:0002:ffff:1:2:3'));
    expect(addressKey('2001:db8:1:2::1')).not.toBe(addressKey('2001:db8:1:3::1'));
    expect(addressKey('::1')).toBe('::1');
    expect(addressKey(undefined)).toBe('');
  });

  it('a token bucket lets a burst through, then one per 1/rate seconds, and says how long to wait', () => {
    let now = 0;
    const b = new TokenBuckets(2, 0.5, 10, () => now);
    expect([b.take('a'), b.take('a'), b.take('a')]).toEqual([0, 0, 2]);
    now += 2000;
    expect([b.take('a'), b.take('a')]).toEqual([0, 2]);
    expect(b.take('b')).toBe(0);
  });
});
