// A guest that serves, for real: examples/http-hello (TypeScript lowered to ES5, the runtime's
// http, dgram and timers on the C host's libuv loop) on Debian's cloud-arm64 kernel in
// qemu-system-aarch64, booted from its disk through U-Boot verified boot with `signet run --net
// user --forward`: the guest loads virtio-net, /init gives eth0 QEMU's user-network address,
// and the host reaches the service through ports forwarded on 127.0.0.1. One boot, and a second
// from the same disk after QEMU is killed during config writes (the setting is old or new). The guest also
// serves HTTPS (mbed TLS in the C host, a test certificate the image carries) and, as a TLS
// client, fetches from HTTPS servers on the host at 10.0.2.2: one with a certificate from its CA
// (answered), one from a foreign CA (refused).
//
// Timeouts are liveness bounds, not assertions.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest, type Server as HttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBoard } from '../sdk/board';
import { qemuNetworkArgs } from '../sdk/disk/network';
import { issueCertificate } from '../sdk/keys/device-x509';
import { createVendorCa } from '../sdk/keys/x509';
import { TEST_CA_PEM, TEST_CERT_PEM, TEST_KEY_PEM } from '../examples/http-hello/src/test-tls';
import { CLI, expectOneLineError, ROOT, signet } from './helpers/cli';

const board = loadBoard('qemu-virt-arm64');
const available = existsSync(board.qemu!.firmware!) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const BOOT_TIMEOUT = 600_000; // TCG on a loaded 2-core machine; a liveness bound only

/** Two free TCP ports and one free UDP port on 127.0.0.1, for the forwards. */
async function freePorts(): Promise<{ http: number; https: number; udp: number }> {
  const freeTcp = () => new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const tcp = await freeTcp();
  let https = await freeTcp();
  while (https === tcp) https = await freeTcp();
  const udp = await new Promise<number>((resolve) => {
    const s = createSocket('udp4');
    s.bind(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  return { http: tcp, https, udp };
}

/** An HTTPS server on the host's loopback (the guest reaches it as 10.0.2.2). */
function hostHttps(cert: string, key: string): Promise<HttpsServer> {
  const s = createHttpsServer({ cert, key }, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hello from the host ' + req.url);
  });
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve(s)));
}

function httpsGet(port: number, path: string, ca: string): Promise<{ status: number; body: string; protocol: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, ca, servername: 'localhost', agent: false, timeout: 120_000 }, (res) => {
      let body = '';
      const protocol = (res.socket as TLSSocket).getProtocol() ?? '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, protocol }));
    });
    req.on('timeout', () => req.destroy(new Error('no HTTPS answer from the guest')));
    req.on('error', reject);
    req.end();
  });
}

function get(port: number, path: string, agent: Agent | false = false): Promise<{ status: number; headers: Record<string, unknown>; body: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, timeout: 60_000 }, (res) => {
      let body = '';
      const localPort = res.socket.localPort ?? 0;
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, localPort }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer from the guest')));
    req.on('error', reject);
    req.end();
  });
}

function put(port: number, path: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'PUT', agent: false, timeout: 60_000, headers: { 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer from the guest')));
    req.on('error', reject);
    req.end(body);
  });
}

function udpRoundTrip(port: number, text: string): Promise<string> {
  const s = createSocket('udp4');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      s.close();
      reject(new Error('no UDP answer from the guest'));
    }, 60_000);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m.toString());
    });
    s.send(text, port, '127.0.0.1');
  });
}

describe.skipIf(!available)('a qemu-virt-arm64 guest serving HTTP and UDP (signet run --net user --forward)', () => {
  let work: string;
  let run: ChildProcess | undefined;
  let console_ = '';
  let ports: { http: number; https: number; udp: number };
  let good: HttpsServer | undefined;
  let foreign: HttpsServer | undefined;
  const portOf = (s: HttpsServer | undefined) => (s!.address() as { port: number }).port;

  beforeAll(async () => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'serve-arm64-'));
    const keys = join(work, 'keys');
    const ok = (r: { code: number; stderr: string; stdout: string }) => expect(r.code, r.stderr + r.stdout).toBe(0);
    ok(signet(['keys', 'init', '--dir', keys]));
    // Host-side HTTPS servers for the guest's fetches: one with the certificate of the example's
    // test CA, one from a CA the guest does not carry. Their ports go into a copy of the project.
    const other = createVendorCa('A foreign CA', 2);
    const otherLeaf = issueCertificate({ caCertPem: other.certPem, caKeyPem: other.keyPem, commonName: 'localhost', role: 'server', days: 2, dnsNames: ['localhost'] });
    [good, foreign] = await Promise.all([hostHttps(TEST_CERT_PEM, TEST_KEY_PEM), hostHttps(otherLeaf.certPem, otherLeaf.keyPem!)]);
    const project = join(work, 'http-hello');
    cpSync(join(ROOT, 'examples', 'http-hello'), project, { recursive: true });
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
      ...JSON.parse(readFileSync(join(ROOT, 'examples', 'http-hello', 'tsconfig.json'), 'utf8')),
    }).replace('../../sdk/', join(ROOT, 'sdk') + '/'));
    writeFileSync(join(project, 'src', 'fetch-targets.ts'), `export const FETCH_TARGETS: Array<{ port: number; servername: string }> = ${JSON.stringify([
      { port: portOf(good), servername: 'localhost' },
      { port: portOf(foreign), servername: 'localhost' },
    ])};\n`);
    const app = join(work, 'http-hello.simg');
    ok(signet(['build', '--project', project, '--version', '2.1.0', '--security-counter', '1', '--keys', keys, '--out', app]));
    ok(signet(['disk', app, '--board', board.id, '--keys', keys, '--out', join(work, 'disk.img'), '--key-dtb', join(work, 'pub.dtb')], { timeout: 300_000 }));
    ports = await freePorts();
    run = spawn(process.execPath, [
      CLI, 'run', join(work, 'disk.img'), '--board', board.id, '--key-dtb', join(work, 'pub.dtb'),
      '--net', 'user', '--forward', `${ports.http}:8080`, '--forward', `${ports.https}:8443`, '--forward', `udp:${ports.udp}:7007`,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    run.stdout!.on('data', (d: Buffer) => (console_ += d.toString('latin1')));
    run.stderr!.on('data', (d: Buffer) => (console_ += d.toString('latin1')));
    const deadline = Date.now() + BOOT_TIMEOUT;
    const fetched = () => (console_.match(/app\[FETCH\]/g) ?? []).length === 2;
    while (!(/app\[SERVING\]/.test(console_) && fetched()) && !/app\[FAILED\]|boot\[RECOVERY\]|host\[ERROR\]/.test(console_)) {
      if (Date.now() > deadline || run.exitCode !== null) throw new Error('the guest did not start serving; console:\n' + console_.slice(-3000));
      await new Promise((r) => setTimeout(r, 250));
    }
  }, BOOT_TIMEOUT + 300_000);

  afterAll(async () => {
    if (run && run.exitCode === null) {
      const exited = new Promise((r) => run!.once('exit', r));
      run.kill('SIGTERM'); // signet run stops its QEMU
      await exited;
    }
    good?.close();
    foreign?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('boots through U-Boot, brings up eth0 with virtio-net, and starts the service', () => {
    expect(console_).toMatch(/sha256,rsa2048:fit\+ OK/);
    expect(console_).toContain('host[NET] eth0 10.0.2.15/24 via 10.0.2.2');
    expect(console_).toContain('boot[OK] slot=a version=2.1.0');
    expect(console_).toContain(`app[SERVING] http=8080 https=8443 udp=7007`);
    expect(console_).not.toMatch(/host\[(WARN|ERROR)\]|app\[FAILED\]/);
  });

  it('fired its timers by due time, equal ones in the order set, the interval three times', () => {
    const line = /app\[TIMERS\] (.*)/.exec(console_)![1]!.trim().split(' ');
    expect([...line].sort()).toEqual(['t10', 't30', 't30b', 'tick1', 'tick2', 'tick3']);
    const at = (t: string) => line.indexOf(t);
    expect(at('t10')).toBeLessThan(at('t30'));
    expect(at('t30')).toBeLessThan(at('t30b'));
    expect(at('tick1')).toBeLessThan(at('tick2'));
    expect(at('tick2')).toBeLessThan(at('tick3'));
  });

  it('answers HTTP from the host through the forwarded port, keeping the connection alive, with the right board and version', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const root = await get(ports.http, '/', agent);
      expect(root.status).toBe(200);
      expect(root.body).toBe('hello from signet on qemu-virt-arm64 v2.1.0\n');
      expect(root.headers.connection).toBe('keep-alive');
      const status = await get(ports.http, '/status', agent);
      expect(status.localPort).toBe(root.localPort); // the same connection
      expect(status.headers['content-type']).toBe('application/json');
      expect(JSON.parse(status.body)).toMatchObject({ service: 'http-hello', version: '2.1.0', board: 'qemu-virt-arm64', requests: 2 });
    } finally {
      agent.destroy();
    }
    const missing = await get(ports.http, '/nope');
    expect(missing.status).toBe(404);
    expect(missing.headers.connection).toBe('close'); // Node's client asked for it
  });

  it('answers HTTPS (TLS 1.2) through the forwarded port with the certificate it carries, verified against its CA', async () => {
    const r = await httpsGet(ports.https, '/status', TEST_CA_PEM);
    expect(r.status).toBe(200);
    expect(r.protocol).toBe('TLSv1.2');
    expect(JSON.parse(r.body)).toMatchObject({ service: 'http-hello', version: '2.1.0', board: 'qemu-virt-arm64' });
  });

  it('fetches over HTTPS from the host at 10.0.2.2 and refuses a server whose certificate is not from its CA', () => {
    expect(console_).toContain(`app[FETCH] ${portOf(good)} 200 hello from the host /from-guest`);
    expect(console_).toContain(`app[FETCH] ${portOf(foreign)} refused E_TLS_UNTRUSTED`);
  });

  it('echoes a UDP datagram sent to the forwarded UDP port', async () => {
    expect(await udpRoundTrip(ports.udp, 'ping from the host')).toBe('ping from the host');
  });

  // Last: it ends this boot. PUT /api/config/wifi-name (validated, size-capped), then a stream of
  // PUTs during which QEMU is killed (SIGKILL: a power cut during a config write), then ONE more
  // boot from the same disk file: the name is the last one acknowledged or the one in flight.
  it('keeps /api/config/wifi-name across a power cut and a reboot from the same disk: old or new, never garbage', async () => {
    const path = '/api/config/wifi-name';
    expect(JSON.parse((await get(ports.http, path)).body)).toEqual({ 'wifi-name': null });
    expect((await put(ports.http, path, 'attic')).status).toBe(200);
    expect(JSON.parse((await get(ports.http, path)).body)).toEqual({ 'wifi-name': 'attic' });
    expect(JSON.parse((await put(ports.http, path, 'x'.repeat(33))).body)).toEqual({ error: 'E_WIFI_NAME' });
    expect((await put(ports.http, path, 'y'.repeat(300))).status).toBe(413);
    expect((await put(ports.http, path, 'bad\u0001name')).status).toBe(400);
    expect(JSON.parse((await get(ports.http, path)).body)).toEqual({ 'wifi-name': 'attic' });

    const qemuPid = Number(spawnSync('pgrep', ['-P', String(run!.pid), '-f', 'qemu-system-aarch64'], { encoding: 'utf8' }).stdout.trim().split('\n')[0]);
    expect(qemuPid).toBeGreaterThan(0);
    let acked = 'attic';
    let sent = 'attic';
    let killed = false;
    const exited = new Promise((r) => run!.once('exit', r));
    for (let i = 1; i <= 400 && !killed; i++) {
      sent = `net-${i}-${'n'.repeat(i % 20)}`;
      if (i === 12) setTimeout(() => { process.kill(qemuPid, 'SIGKILL'); killed = true; }, 1 + (Date.now() % 40)); // mid-stream
      try {
        const r = await put(ports.http, path, sent);
        if (r.status === 200) acked = sent;
      } catch {
        break; // the guest is gone
      }
    }
    // signet run ends when its QEMU does; if it did not, stop it (a liveness bound, not a check).
    await Promise.race([exited, new Promise((r) => setTimeout(r, 60_000))]);
    if (run!.exitCode === null && run!.signalCode === null) {
      run!.kill('SIGTERM');
      await exited;
    }

    let again = '';
    const second = spawn(process.execPath, [
      CLI, 'run', join(work, 'disk.img'), '--board', board.id, '--key-dtb', join(work, 'pub.dtb'),
      '--net', 'user', '--forward', `${ports.http}:8080`,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    second.stdout!.on('data', (d: Buffer) => (again += d.toString('latin1')));
    second.stderr!.on('data', (d: Buffer) => (again += d.toString('latin1')));
    try {
      const deadline = Date.now() + BOOT_TIMEOUT;
      while (!/app\[SERVING\]/.test(again)) {
        if (Date.now() > deadline || second.exitCode !== null) throw new Error('the guest did not serve again; console:\n' + again.slice(-3000));
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(again).toContain('boot[OK] slot=a version=2.1.0'); // the boot state survived too
      const after = JSON.parse((await get(ports.http, path)).body)['wifi-name'];
      expect([acked, sent]).toContain(after);
      expect(after).not.toBe('attic'); // some PUT after the first landed
    } finally {
      const done = new Promise((r) => second.once('exit', r));
      if (second.exitCode === null) second.kill('SIGTERM');
      await done;
    }
  }, BOOT_TIMEOUT + 120_000);
});

describe('signet run --net / --forward (options, no guest)', () => {
  it('turns forwards into QEMU user-network options bound to 127.0.0.1', () => {
    expect(qemuNetworkArgs({ mode: 'user', forwards: [{ proto: 'tcp', host: 18080, guest: 443 }, { proto: 'udp', host: 15353, guest: 53 }] })).toEqual([
      '-netdev', 'user,id=n0,hostfwd=tcp:127.0.0.1:18080-:443,hostfwd=udp:127.0.0.1:15353-:53',
      '-device', 'virtio-net-pci,netdev=n0,romfile=',
    ]);
  });

  it.each([
    [['--forward', '8080:80'], 'E_USAGE'], // a forward without a network
    [['--net', 'tap'], 'E_USAGE'],
    [['--net', 'user', '--forward', '8080'], 'E_FORWARD'],
    [['--net', 'user', '--forward', '70000:80'], 'E_FORWARD'],
    [['--net', 'user', '--forward', 'sctp:1:2'], 'E_FORWARD'],
    [['--net', 'user', '--forward', '8080:80', '--forward', 'tcp:8080:81'], 'E_FORWARD'],
  ])('refuses %j with %s before starting anything', (args, code) => {
    const r = signet(['run', join(ROOT, 'no-such-disk.img'), '--board', board.id, ...(args as string[])]);
    expectOneLineError(r, code as string);
  });
});
