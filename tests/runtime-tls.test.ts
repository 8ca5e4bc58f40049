// TLS in the runtime (sdk/runtime/tls.ts, fetch.ts) with the C host's engine (mbed TLS,
// bootloader/native/tls.c): an HTTPS server in the runtime answering Node's https client, which
// checks it against a vendor CA made by sdk/keys; the runtime's fetch against Node HTTPS servers
// with the right CA (answered), a foreign CA and a wrong name (refused, with the code the caller
// sees). The same bundle on the host build, on the arm64 build under qemu-user, and under plain
// Node (node:tls), with the same answers; the arm64 and armhf builds under qemu-user too.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, request, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNativeHost } from '../bootloader/native/build';
import { bundleService } from '../sdk/build/bundle';
import { issueCertificate } from '../sdk/keys/device-x509';
import { createVendorCa } from '../sdk/keys/x509';
import { skipUnlessCi } from './helpers/tools';

const BUILD_TIMEOUT = 600_000;

let scratch: string;
const vendor = createVendorCa('Signet test vendor CA', 30);
const foreign = createVendorCa('Somebody else CA', 30);
const leaf = (ca: { certPem: string; keyPem: string }) =>
  issueCertificate({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, commonName: 'localhost', role: 'server', days: 30, dnsNames: ['localhost'] });
const deviceCert = leaf(vendor);
const hostCert = leaf(vendor);
const foreignCert = leaf(foreign);

let good: HttpsServer;
let bad: HttpsServer;
const portOf = (s: HttpsServer) => (s.address() as AddressInfo).port;

function listen(cert: { certPem: string; keyPem?: string }): Promise<HttpsServer> {
  const s = createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hello from node over ' + (req.socket as TLSSocket).getProtocol() + ' ' + req.url);
  });
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve(s)));
}

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'signet-tls-'));
  [good, bad] = await Promise.all([listen(hostCert), listen(foreignCert)]);
});
afterAll(() => {
  good?.close();
  bad?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** The service: fetches (right CA, foreign CA, wrong name, no CA), then serves HTTPS. */
const SERVICE = `import { fetch, http, log } from 'signet/runtime';
declare const TLS_TEST: { cert: string; key: string; ca: string; good: number; bad: number };
const t = TLS_TEST;
async function tryFetch(name: string, url: string, options: Record<string, unknown>): Promise<void> {
  try {
    const r = await fetch(url, options);
    log('FETCH ' + name + ' ' + r.status + ' ' + r.headers['content-type'] + ' ' + (await r.text()));
  } catch (e) {
    log('FETCH ' + name + ' refused ' + (e as { code?: string }).code);
  }
}
async function main(): Promise<void> {
  await tryFetch('right-ca', 'https://localhost:' + t.good + '/hi', { ca: t.ca });
  await tryFetch('foreign-ca', 'https://localhost:' + t.bad + '/hi', { ca: t.ca });
  await tryFetch('wrong-name', 'https://127.0.0.1:' + t.good + '/hi', { ca: t.ca, servername: 'not-this.example' });
  await tryFetch('no-ca', 'https://localhost:' + t.good + '/hi', {});
  const server = http.createServer({ tls: { cert: t.cert, key: t.key } }, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hello over https ' + req.method + ' ' + req.url);
  });
  server.listen(0, '127.0.0.1', () => log('HTTPS ' + server.address()!.port));
}
main();
`;

let serviceCode: string;
async function service(): Promise<string> {
  if (!serviceCode) {
    const dir = join(scratch, 'svc');
    mkdirSync(dirname(join(dir, 'src/main.ts')), { recursive: true });
    writeFileSync(join(dir, 'src/main.ts'), SERVICE);
    serviceCode = (await bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5' })).code;
  }
  return serviceCode;
}

function prelude(device: boolean): string {
  const t = { cert: deviceCert.certPem, key: deviceCert.keyPem, ca: vendor.certPem, good: portOf(good), bad: portOf(bad) };
  const host = device
    ? `var __signet_host = { board: 'b', version: '1', log: function (l) { signet_native.print(l); }, confirm: function () {}, uv: signet_native.uv };\n`
    : '';
  return host + `var TLS_TEST = ${JSON.stringify(t)};\n`;
}

/** A Node https GET to the service, checked against `ca`; the answer or the refusal's code. */
function get(port: number, ca: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, servername: 'localhost', path: '/x?y=1', ca, agent: false }, (res) => {
      let body = '';
      const s = res.socket as TLSSocket;
      const proto = s.getProtocol() + ' ' + s.getCipher().name;
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(res.statusCode + ' ' + body + ' | ' + proto));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve('refused ' + e.code));
    req.end();
  });
}

/** A raw TLS handshake with the given client options: 'ok <protocol>' or the error. */
function handshake(port: number, o: Record<string, unknown>): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: vendor.certPem, ...o });
    s.on('secureConnect', () => {
      resolve('ok ' + s.getProtocol());
      s.destroy();
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve('refused ' + (e.code ?? e.message)));
  });
}

interface Outcome {
  fetches: string[];
  answers: Record<string, string>;
  out: string;
  err: string;
}

async function runService(cmd: string, args: string[], script: string, extra = false): Promise<Outcome> {
  const p = spawn(cmd, [...args, script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      p.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /HTTPS (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      p.on('exit', (code) => reject(new Error('the service exited (' + code + '): ' + out + err)));
    });
    const answers: Record<string, string> = {};
    answers['vendor CA'] = await get(port, vendor.certPem);
    answers['foreign CA'] = await get(port, foreign.certPem);
    if (extra) {
      answers['TLS 1.3 only'] = await handshake(port, { minVersion: 'TLSv1.3' });
      answers['RSA key exchange'] = await handshake(port, { maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256' });
      answers['CBC cipher'] = await handshake(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-SHA256' });
      answers['TLS 1.1'] = await handshake(port, { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
    }
    const fetches = out.split('\n').filter((l) => l.startsWith('FETCH '));
    return { fetches, answers, out, err };
  } finally {
    p.kill();
  }
}

const EXPECTED_FETCHES = [
  'FETCH right-ca 200 text/plain hello from node over TLSv1.2 /hi',
  'FETCH foreign-ca refused E_TLS_UNTRUSTED',
  'FETCH wrong-name refused E_TLS_HOSTNAME',
  'FETCH no-ca refused E_TLS_NO_CA',
];

describe('TLS in the runtime on the C host (mbed TLS, host build)', () => {
  let device: Outcome;
  beforeAll(async () => {
    const binary = await buildNativeHost('host');
    const script = join(scratch, 'tls-device.js');
    writeFileSync(script, prelude(true) + (await service()));
    device = await runService(binary, [], script, true);
  }, BUILD_TIMEOUT);

  it('serves HTTPS (TLS 1.2, ECDHE with an AEAD cipher) that Node verifies against the vendor CA', () => {
    expect(device.answers['vendor CA']).toMatch(/^200 hello over https GET \/x\?y=1 \| TLSv1\.2 ECDHE-RSA-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
    expect(device.answers['foreign CA']).toBe('refused UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('refuses TLS 1.3-only and 1.1 clients, RSA key exchange and CBC suites', () => {
    expect(device.answers['TLS 1.3 only']).toMatch(/^refused /);
    expect(device.answers['TLS 1.1']).toMatch(/^refused /);
    expect(device.answers['RSA key exchange']).toMatch(/^refused /);
    expect(device.answers['CBC cipher']).toMatch(/^refused /);
  });

  it('fetches from a server of its CA and refuses a foreign CA, a wrong name and a missing CA with their codes', () => {
    expect(device.fetches).toEqual(EXPECTED_FETCHES);
    expect(device.err).toBe('');
  });

  it('gives the same fetches and answers under Node (node:tls)', async () => {
    const script = join(scratch, 'tls-node.js');
    writeFileSync(script, prelude(false) + (await service()));
    const node = await runService(process.execPath, [], script);
    expect(node.fetches).toEqual(EXPECTED_FETCHES.map((l) => l.replace('over TLSv1.2', 'over TLSv1.3')));
    expect(node.answers['vendor CA']).toMatch(/^200 hello over https GET \/x\?y=1 \| TLSv1\.3 /);
    expect(node.answers['foreign CA']).toBe(device.answers['foreign CA']);
  });
});

const hasQemu = (cmd: string) => spawnSync(cmd, ['--version']).status === 0;

describe.each([
  { target: 'arm64' as const, qemu: 'qemu-aarch64-static' },
  { target: 'armhf' as const, qemu: 'qemu-arm-static' },
])('TLS on the $target build under qemu-user', ({ target, qemu }) => {
  it.skipIf(skipUnlessCi(hasQemu(qemu)))('serves HTTPS and fetches with the same outcomes as the host build', async () => {
    const binary = await buildNativeHost(target);
    const script = join(scratch, `tls-${target}.js`);
    writeFileSync(script, prelude(true) + (await service()));
    const arm = await runService(qemu, [binary], script);
    expect(arm.fetches).toEqual(EXPECTED_FETCHES);
    expect(arm.answers['vendor CA']).toMatch(/^200 hello over https GET \/x\?y=1 \| TLSv1\.2 ECDHE-/);
    expect(arm.answers['foreign CA']).toBe('refused UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(arm.err).toBe('');
  }, BUILD_TIMEOUT);
});

/** A raw TCP server on loopback that answers every connection with `answer` and closes. */
async function rawServer(answer: string): Promise<{ port: number; close(): void }> {
  const { createServer } = await import('node:net');
  const s = createServer((c) => {
    c.once('data', () => c.end(answer));
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return { port: (s.address() as AddressInfo).port, close: () => s.close() };
}

describe('fetch: reading answers (the runtime under Node, node:net underneath)', () => {
  const codeOf = (p: Promise<unknown>) => p.then(() => 'resolved', (e: { code?: string }) => String(e.code));

  it('decodes chunked and Content-Length bodies and joins repeated headers', async () => {
    const { fetch } = await import('../sdk/runtime/fetch');
    const chunked = await rawServer('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nX-A: 2\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n');
    const sized = await rawServer('HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnopeEXTRA');
    try {
      const a = await fetch('http://localhost:' + chunked.port + '/x');
      expect([a.status, a.ok, a.headers['x-a'], await a.text()]).toEqual([200, true, '1, 2', 'hello, world']);
      const b = await fetch('http://127.0.0.1:' + sized.port);
      expect([b.status, b.statusText, b.ok, await b.text()]).toEqual([404, 'Not Found', false, 'nope']);
    } finally {
      chunked.close();
      sized.close();
    }
  });

  it('refuses a cut-off body, an answer over maxBytes, a bad URL and https without a CA, with their codes', async () => {
    const { fetch } = await import('../sdk/runtime/fetch');
    const cut = await rawServer('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort');
    const cutChunked = await rawServer('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel');
    const big = await rawServer('HTTP/1.1 200 OK\r\n\r\n' + 'x'.repeat(5000));
    const notHttp = await rawServer('SSH-2.0-OpenSSH\r\n\r\n');
    try {
      expect(await codeOf(fetch('http://127.0.0.1:' + cut.port + '/'))).toBe('E_FETCH_RESPONSE');
      expect(await codeOf(fetch('http://127.0.0.1:' + cutChunked.port + '/'))).toBe('E_FETCH_RESPONSE');
      expect(await codeOf(fetch('http://127.0.0.1:' + big.port + '/', { maxBytes: 4096 }))).toBe('E_FETCH_TOO_LARGE');
      expect(await codeOf(fetch('http://127.0.0.1:' + notHttp.port + '/'))).toBe('E_FETCH_RESPONSE');
      expect(await codeOf(fetch('ftp://127.0.0.1/'))).toBe('E_FETCH_URL');
      expect(await codeOf(fetch('https://127.0.0.1:' + portOf(good) + '/'))).toBe('E_TLS_NO_CA');
      expect(await codeOf(fetch('http://127.0.0.1:1/', { headers: { 'x-bad': 'a\r\nInjected: 1' } }))).toBe('E_FETCH_HEADER');
    } finally {
      for (const s of [cut, cutChunked, big, notHttp]) s.close();
    }
  });
});
