// sdk/runtime: the app-facing API, run as it runs on a device: bundled, lowered to ES5, in a
// fresh JS context whose only link to the outside is the boot stage's __signet_host.
import { runInNewContext } from 'node:vm';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleService } from '../sdk/build/bundle';
import { buildNativeHost } from '../bootloader/native/build';
import { HttpParseError, HttpRequestParser } from '../sdk/runtime/http-parser';

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'signet-runtime-'));
});
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

async function bundle(main: string): Promise<string> {
  const dir = join(scratch, 'p' + Math.random().toString(16).slice(2));
  mkdirSync(dirname(join(dir, 'src/main.ts')), { recursive: true });
  writeFileSync(join(dir, 'src/main.ts'), main);
  return (await bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5' })).code;
}

/** A host as the boot stage installs it, recording what the app did. */
function host(extra: Record<string, unknown> = {}) {
  const calls: string[] = [];
  return {
    calls,
    host: {
      board: 'qemu-virt-arm64',
      version: '1.4.2',
      log: (line: string) => calls.push('log:' + line),
      confirm: () => calls.push('confirm'),
      ...extra,
    },
  };
}

const app = `import { board, confirm, exit, log, version } from 'signet/runtime';
log('hello from signet on ' + board + ' v' + version);
log(42 as unknown as string);
confirm();
exit(3);
`;

describe('signet/runtime with a host', () => {
  it('sends log lines and confirm to the host, and reads board and version from it', async () => {
    const code = await bundle(app);
    const h = host({ exit: (c: number) => h.calls.push('exit:' + c) });
    runInNewContext(code, { __signet_host: h.host });
    expect(h.calls).toEqual(['log:hello from signet on qemu-virt-arm64 v1.4.2', 'log:42', 'confirm', 'exit:3']);
  });

  it('does not need console when a host is present (Duktape has none), and exit is optional', async () => {
    const code = await bundle(app);
    const h = host();
    runInNewContext(code, { __signet_host: h.host }); // no console in this context
    expect(h.calls).toEqual(['log:hello from signet on qemu-virt-arm64 v1.4.2', 'log:42', 'confirm']);
  });
});

describe('signet/runtime without a host (plain Node)', () => {
  it('falls back to console.log, saying that confirm and exit had no host', async () => {
    const code = await bundle(app);
    const lines: string[] = [];
    runInNewContext(code, { console: { log: (s: string) => lines.push(s) } });
    expect(lines).toEqual(['hello from signet on none v0.0.0', '42', 'app[CONFIRM] (no host)', 'app[EXIT] 3 (no host)']);
  });

  it('runs silently rather than failing when there is neither host nor console', async () => {
    const code = await bundle(app);
    expect(() => runInNewContext(code, {})).not.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
// The Node-like network API (timers, net, dgram, http) and the HTTP parser under it.
// ---------------------------------------------------------------------------------------------

describe('HTTP request parser (sdk/runtime/http-parser.ts)', () => {
  const enc = new TextEncoder();
  const GOOD = 'GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\nContent-Length: 3\r\n\r\nabc' + 'POST /p HTTP/1.0\r\nConnection: keep-alive\r\n\r\n';

  it('parses pipelined requests the same however the bytes are split', () => {
    const whole = new HttpRequestParser().push(enc.encode(GOOD)).requests;
    expect(whole.map((r) => [r.method, r.url, r.httpVersion, r.keepAlive, new TextDecoder().decode(r.body)])).toEqual([
      ['GET', '/a?b=1', '1.1', true, 'abc'],
      ['POST', '/p', '1.0', true, ''],
    ]);
    expect(whole[0].headers).toEqual({ host: 'x', 'x-two': '1, 2', 'content-length': '3' });
    expect(whole[0].rawHeaders).toEqual(['Host', 'x', 'X-Two', '1', 'x-two', '2', 'Content-Length', '3']);
    const bytes = enc.encode(GOOD);
    for (let cut = 1; cut < bytes.length; cut++) {
      const p = new HttpRequestParser();
      const got = [...p.push(bytes.subarray(0, cut)).requests, ...p.push(bytes.subarray(cut)).requests];
      expect(got).toEqual(whole);
    }
  });

  const refusals: Array<[string, string, number]> = [
    ['a bare LF', 'GET / HTTP/1.1\nHost: x\r\n\r\n', 400],
    ['a bare CR in a header', 'GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n', 400],
    ['obsolete line folding', 'GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n', 400],
    ['HTTP/1.1 without Host', 'GET / HTTP/1.1\r\nX: y\r\n\r\n', 400],
    ['a space in the target', 'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['no version', 'GET /\r\nHost: x\r\n\r\n', 400],
    ['a header without a name', 'GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n', 400],
    ['a space before the colon', 'GET / HTTP/1.1\r\nHost : x\r\n\r\n', 400],
    ['a control character in a value', 'GET / HTTP/1.1\r\nHost: x\x01\r\n\r\n', 400],
    ['a non-numeric Content-Length', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\n', 400],
    ['two different Content-Lengths', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 400],
    ['Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', 501],
    ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505],
    ['a head over the limit', 'GET / HTTP/1.1\r\nHost: x\r\nX: ' + 'a'.repeat(300) + '\r\n\r\n', 431],
    ['a head over the limit with no end in sight', 'GET / HTTP/1.1\r\nX: ' + 'a'.repeat(300), 431],
    ['too many header lines', 'GET / HTTP/1.1\r\nHost: x\r\n' + 'X: 1\r\n'.repeat(10) + '\r\n', 431],
    ['a body over the limit', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n', 413],
  ];
  it.each(refusals)('refuses %s, with its status, and nothing after it', (_what, text, status) => {
    const p = new HttpRequestParser({ maxHeaderBytes: 256, maxHeaders: 8, maxBodyBytes: 64 });
    // A good request first: it still comes out, the bad one after it stops the parser.
    const r = p.push(enc.encode('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n' + text));
    expect(r.requests.map((q) => q.url)).toEqual(['/ok']);
    expect(r.error).toBeInstanceOf(HttpParseError);
    expect(r.error!.status).toBe(status);
    expect(r.error!.code).toMatch(/^E_HTTP_/);
    const after = p.push(enc.encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(after.requests).toEqual([]);
    expect(after.error!.status).toBe(400);
  });
});

/** A service on the runtime: HTTP and a UDP echo on ephemeral loopback ports, timers logged. */
const SERVICE = `import { dgram, http, log, timers } from 'signet/runtime';
const order: string[] = [];
timers.setTimeout(() => order.push('b'), 20);
timers.setTimeout(() => order.push('a'), 5);
timers.setTimeout(() => order.push('c'), 20);
const t = timers.setTimeout(() => order.push('never'), 10);
timers.clearTimeout(t);
timers.setTimeout(() => log('TIMERS ' + order.join(' ')), 40);
async function later(v: string): Promise<string> {
  await new Promise<void>((r) => setTimeout(r, 1));
  return v;
}
const server = http.createServer({ maxHeaderBytes: 512, maxBodyBytes: 64, maxConnections: 2 }, (req, res) => {
  if (req.url === '/throw') throw new Error('the handler threw');
  let n = 0;
  req.on('data', (d: Uint8Array) => { n += d.length; });
  req.on('end', () => {
    later(req.method + ' ' + req.url + ' ' + req.httpVersion + ' host=' + req.headers.host + ' body=' + n).then((line) => {
      if (req.url === '/chunked') { res.write(line); res.end('\\n'); } else res.end(line + '\\n');
    });
  });
});
server.listen(0, '127.0.0.1', () => {
  const udp = dgram.createSocket('udp4', (m, r) => udp.send(m, r.port, r.address));
  udp.bind(0, '127.0.0.1', () => log('PORTS ' + server.address()!.port + ' ' + udp.address().port));
});
`;

/** What a client sees: raw HTTP exchanges on one connection each, and one UDP round trip. */
const EXCHANGES: Array<[string, string]> = [
  ['keep-alive, then close', 'GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello'],
  ['HTTP/1.0', 'GET /old HTTP/1.0\r\n\r\n'],
  ['chunked answer', 'GET /chunked HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'],
  ['HEAD', 'HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'],
  ['bad request after a good one', 'GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\nHost: a\r\n\r\n'],
  ['oversized head', 'GET / HTTP/1.1\r\nHost: a\r\nX: ' + 'y'.repeat(600) + '\r\n\r\n'],
  ['oversized body', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n'],
  ['a handler that throws', 'GET /throw HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'],
];

async function exchange(port: number, text: string): Promise<string> {
  const { connect } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (got += d));
    s.on('end', () => resolve(got));
    s.on('error', (e: Error) => resolve(got + '[' + ((e as { code?: string }).code ?? e.message) + ']'));
    s.setTimeout(20_000, () => { s.destroy(); resolve(got + '[no end]'); }); // liveness bound
    s.write(text);
  });
}

/** Two idle connections fill a server limited to two; a third is closed unanswered; then it serves again. */
async function connectionLimit(port: number): Promise<string> {
  const { connect } = await import('node:net');
  const open = () =>
    new Promise<import('node:net').Socket>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(s));
      s.on('error', reject);
    });
  const a = await open();
  const b = await open();
  const third = await new Promise<string>((resolve) => {
    const c = connect(port, '127.0.0.1', () => c.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n'));
    let got = '';
    c.on('data', (d) => (got += d.toString()));
    c.on('close', () => resolve(got === '' ? 'third closed unanswered' : 'third answered: ' + got));
    c.on('error', () => undefined);
    c.setTimeout(20_000, () => c.destroy()); // liveness bound
  });
  a.destroy();
  b.destroy();
  // Served again once the server has seen those two close (a retry loop, not a timing check).
  for (let i = 0; i < 200; i++) {
    const r = await exchange(port, 'GET /again HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    if (r.startsWith('HTTP/1.1 200')) return third + '; then served';
    await new Promise((r) => setTimeout(r, 20));
  }
  return third + '; never served again';
}

async function udpEcho(port: number): Promise<string> {
  const dgram = await import('node:dgram');
  const s = dgram.createSocket('udp4');
  return new Promise((resolve) => {
    s.on('message', (m) => {
      s.close();
      resolve(m.toString());
    });
    s.send('ping over udp', port, '127.0.0.1');
    setTimeout(() => { s.close(); resolve('[no answer]'); }, 20_000).unref(); // liveness bound
  });
}

/** Starts `cmd` on the service bundle, waits for its PORTS line, runs the client script, stops it. */
async function serveAndAsk(cmd: string, args: string[], exchanges = EXCHANGES): Promise<{ answers: Record<string, string>; limit: string; udp: string; out: string; err: string }> {
  const { spawn } = await import('node:child_process');
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  try {
    const ports = await new Promise<number[]>((resolve, reject) => {
      p.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /PORTS (\d+) (\d+)/.exec(out);
        if (m) resolve([Number(m[1]), Number(m[2])]);
      });
      p.on('exit', (code) => reject(new Error('the service exited (' + code + '): ' + out + err)));
    });
    const limit = await connectionLimit(ports[0]!);
    const answers: Record<string, string> = {};
    for (const [name, text] of exchanges) answers[name] = await exchange(ports[0]!, text);
    const udp = await udpEcho(ports[1]!);
    for (let i = 0; i < 500 && !/TIMERS/.test(out); i++) await new Promise((r) => setTimeout(r, 20));
    return { answers, limit, udp, out, err };
  } finally {
    p.kill();
  }
}

describe('signet/runtime serving: on the C host (Duktape + libuv) and on Node, the same answers', () => {
  let device: Awaited<ReturnType<typeof serveAndAsk>>;
  let node: Awaited<ReturnType<typeof serveAndAsk>>;
  beforeAll(async () => {
    const code = await bundle(SERVICE);
    const host = await buildNativeHost('host');
    const deviceJs = join(scratch, 'service-device.js');
    // What the boot stage hands an app: its host object, with the event loop.
    writeFileSync(deviceJs, `var __signet_host = { board: 'b', version: '1', log: function (l) { signet_native.print(l); }, confirm: function () {}, uv: signet_native.uv };\n` + code);
    const nodeJs = join(scratch, 'service-node.js');
    writeFileSync(nodeJs, code); // no host: log is console.log, sockets are node:net/node:dgram
    // Node ends the process on an exception in a handler (its default); the device reports it and goes on.
    const nodeExchanges = EXCHANGES.filter(([name]) => name !== 'a handler that throws');
    [device, node] = await Promise.all([serveAndAsk(host, [deviceJs]), serveAndAsk(process.execPath, [nodeJs], nodeExchanges)]);
  }, 120_000);

  it('answers keep-alive, HTTP/1.0, chunked and HEAD requests', () => {
    const a = device.answers;
    expect(a['keep-alive, then close']).toBe(
      'HTTP/1.1 200 OK\r\nContent-Length: 24\r\nConnection: keep-alive\r\n\r\nGET / 1.1 host=a body=0\n' +
        'HTTP/1.1 200 OK\r\nContent-Length: 26\r\nConnection: close\r\n\r\nPOST /p 1.1 host=a body=5\n',
    );
    expect(a['HTTP/1.0']).toBe('HTTP/1.1 200 OK\r\nContent-Length: 35\r\nConnection: close\r\n\r\nGET /old 1.0 host=undefined body=0\n');
    expect(a['chunked answer']).toBe('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1e\r\nGET /chunked 1.1 host=a body=0\r\n1\r\n\n\r\n0\r\n\r\n');
    expect(a['HEAD']).toBe('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n');
  });

  it('answers bad input with 400/413/431 after the good answers before it, then closes', () => {
    const a = device.answers;
    expect(a['bad request after a good one']).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*GET \/1 1\.1 host=a body=0\nHTTP\/1\.1 400 Bad Request\r\n[^]*Connection: close\r\n\r\n400 Bad Request\n$/);
    expect(a['oversized head']).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    expect(a['oversized body']).toMatch(/^HTTP\/1\.1 413 Content Too Large\r\n/);
  });

  it('answers 500 when the handler throws, reports the error with its file and line, and keeps serving', () => {
    expect(device.answers['a handler that throws']).toBe('HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    expect(device.err).toMatch(/host\[ERROR\] uncaught in a 'data' handler at .*service-device\.js:\d+: Error: the handler threw/);
    expect(device.udp).toBe('ping over udp'); // asked after the throw
  });

  it('closes connections beyond maxConnections as they arrive, and serves again when some close', () => {
    expect(device.limit).toBe('third closed unanswered; then served');
    expect(node.limit).toBe(device.limit);
  });

  it('echoes UDP and fires timers by due time, equal ones in the order set, cleared ones never', () => {
    expect(device.udp).toBe('ping over udp');
    expect(device.out).toContain('TIMERS a b c\n');
  });

  it('gives the same answers under Node (node:net, node:dgram) as on the device', () => {
    const { 'a handler that throws': _thrown, ...deviceAnswers } = device.answers;
    expect(node.answers).toEqual(deviceAnswers);
    expect(node.udp).toBe(device.udp);
    expect(node.out).toContain('TIMERS a b c\n');
  });
});

/**
 * Promise ordering that code relies on: reactions, adoption of thenables, combinators, async/await.
 * Timers that race each other are far apart: Node samples "now" for a timer made in a microtask
 * afresh, so on a loaded machine a 2 ms timer made there could fall behind a 5 ms one made before.
 */
const PROMISES = `import { log } from 'signet/runtime';
const out: string[] = [];
const p = (s: string) => out.push(s);
Promise.resolve(1).then((v) => p('then ' + v));
new Promise<number>((resolve) => { p('executor'); resolve(2); }).then((v) => { p('then ' + v); return { then(f: (x: number) => void) { f(3); } } as unknown as number; }).then((v) => p('adopted ' + v));
Promise.reject(new Error('no')).catch((e: Error) => p('caught ' + e.message)).finally(() => p('finally'));
Promise.all([1, Promise.resolve(2), new Promise((r) => setTimeout(() => r(3), 100))]).then((v) => p('all ' + JSON.stringify(v)));
Promise.race([new Promise((r) => setTimeout(() => r('slow'), 150)), new Promise((r) => setTimeout(() => r('fast'), 1))]).then((v) => p('race ' + v));
Promise.allSettled([Promise.reject(new Error('x')), 4]).then((v) => p('settled ' + (v as Array<{ status: string }>).map((s) => s.status).join(',')));
async function f(n: number): Promise<number> {
  p('f start ' + n);
  await null;
  p('f after await ' + n);
  const got = await new Promise<number>((r) => setTimeout(() => r(n * 10), 2));
  if (n === 2) throw new Error('f failed');
  return got;
}
f(1).then((v) => p('f(1) = ' + v));
f(2).catch((e: Error) => p('f(2) threw ' + e.message));
queueMicrotask(() => p('microtask'));
setTimeout(() => p('timeout 0'), 0);
p('sync end');
setTimeout(() => log(out.join('\\n')), 400);
`;

describe('the runtime Promise on Duktape orders reactions like V8\'s', () => {
  it('gives the same sequence on the C host (injected Promise) as on Node (native Promise)', async () => {
    const device = await bundle(PROMISES);
    const host = await buildNativeHost('host');
    const file = join(scratch, 'promises-device.js');
    writeFileSync(file, `var __signet_host = { board: 'b', version: '1', log: function (l) { signet_native.print(l); }, confirm: function () {}, uv: signet_native.uv };\n` + device);
    const { spawnSync } = await import('node:child_process');
    const onDevice = spawnSync(host, [file], { encoding: 'utf8' });
    expect(onDevice.stderr).toBe('');
    const dir = join(scratch, 'pnode');
    mkdirSync(join(dir, 'src'), { recursive: true });
    writeFileSync(join(dir, 'src/main.ts'), PROMISES);
    const nodeCode = (await bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'node' })).code;
    const onNode = spawnSync(process.execPath, ['-'], { input: nodeCode, encoding: 'utf8' });
    expect(onNode.stderr).toBe('');
    expect(onDevice.stdout).toBe(onNode.stdout);
    expect(onDevice.stdout.split('\n')).toEqual(expect.arrayContaining(['sync end', 'adopted 3', 'all [1,2,3]', 'race fast', 'f(1) = 10', 'f(2) threw f failed']));
  });

  it('reports a rejection nobody handles, with where the error was made, and goes on', async () => {
    const device = await bundle(`import { log } from 'signet/runtime';
Promise.reject(new Error('nobody listens'));
setTimeout(() => log('still running'), 10);
`);
    const host = await buildNativeHost('host');
    const file = join(scratch, 'unhandled-device.js');
    writeFileSync(file, `var __signet_host = { board: 'b', version: '1', log: function (l) { signet_native.print(l); }, confirm: function () {}, uv: signet_native.uv };\n` + device);
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(host, [file], { encoding: 'utf8' });
    expect(r.stdout).toBe('still running\n');
    expect(r.stderr).toMatch(/^host\[ERROR\] uncaught in a 'timeout' handler at .*unhandled-device\.js:\d+: Error: nobody listens/);
    expect(r.status).toBe(70);
  });
});
