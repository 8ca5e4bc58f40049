// A guest that serves, for real: examples/http-hello (TypeScript lowered to ES5, the runtime's
// http, dgram and timers on the C host's libuv loop) on Debian's cloud-arm64 kernel in
// qemu-system-aarch64, booted from its disk through U-Boot verified boot with `signet run --net
// user --forward`: the guest loads virtio-net, /init gives eth0 QEMU's user-network address,
// and the host reaches the service through ports forwarded on 127.0.0.1. One boot.
//
// Timeouts are liveness bounds, not assertions.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBoard } from '../sdk/board';
import { qemuNetworkArgs } from '../sdk/disk/network';
import { CLI, expectOneLineError, ROOT, signet } from './helpers/cli';

const board = loadBoard('qemu-virt-arm64');
const available = existsSync(board.qemu!.firmware!) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const BOOT_TIMEOUT = 600_000; // TCG on a loaded 2-core machine; a liveness bound only

/** Two free TCP ports and one free UDP port on 127.0.0.1, for the forwards. */
async function freePorts(): Promise<{ http: number; udp: number }> {
  const tcp = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const udp = await new Promise<number>((resolve) => {
    const s = createSocket('udp4');
    s.bind(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  return { http: tcp, udp };
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
  let ports: { http: number; udp: number };

  beforeAll(async () => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'serve-arm64-'));
    const keys = join(work, 'keys');
    const ok = (r: { code: number; stderr: string; stdout: string }) => expect(r.code, r.stderr + r.stdout).toBe(0);
    ok(signet(['keys', 'init', '--dir', keys]));
    const app = join(work, 'http-hello.simg');
    ok(signet(['build', '--project', join(ROOT, 'examples', 'http-hello'), '--version', '2.1.0', '--security-counter', '1', '--keys', keys, '--out', app]));
    ok(signet(['disk', app, '--board', board.id, '--keys', keys, '--out', join(work, 'disk.img'), '--key-dtb', join(work, 'pub.dtb')], { timeout: 300_000 }));
    ports = await freePorts();
    run = spawn(process.execPath, [
      CLI, 'run', join(work, 'disk.img'), '--board', board.id, '--key-dtb', join(work, 'pub.dtb'),
      '--net', 'user', '--forward', `${ports.http}:8080`, '--forward', `udp:${ports.udp}:7007`,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    run.stdout!.on('data', (d: Buffer) => (console_ += d.toString('latin1')));
    run.stderr!.on('data', (d: Buffer) => (console_ += d.toString('latin1')));
    const deadline = Date.now() + BOOT_TIMEOUT;
    while (!/app\[SERVING\]|app\[FAILED\]|boot\[RECOVERY\]|host\[ERROR\]/.test(console_)) {
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
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('boots through U-Boot, brings up eth0 with virtio-net, and starts the service', () => {
    expect(console_).toMatch(/sha256,rsa2048:fit\+ OK/);
    expect(console_).toContain('host[NET] eth0 10.0.2.15/24 via 10.0.2.2');
    expect(console_).toContain('boot[OK] slot=a version=2.1.0');
    expect(console_).toContain(`app[SERVING] http=8080 udp=7007`);
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

  it('echoes a UDP datagram sent to the forwarded UDP port', async () => {
    expect(await udpRoundTrip(ports.udp, 'ping from the host')).toBe('ping from the host');
  });
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
