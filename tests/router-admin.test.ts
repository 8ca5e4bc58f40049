// examples/router-admin, for real: built, put on a disk by `signet disk`, given its per-device TLS
// key and certificate by `signet device provision --issue` (from the vendor CA of `signet keys
// init`; nothing TLS in the image), booted in qemu-system-aarch64 through U-Boot verified boot
// with `signet run --net user --forward H:443`, and asked over HTTPS by curl (or Node's https
// where curl is missing) verifying the guest against keys/vendor-ca.crt. One boot.
//
// Timeouts are liveness bounds, not assertions.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBoard } from '../sdk/board';
import { HTTPS_CLIENT, httpsToGuest } from './helpers/https-client';
import { freePort } from './helpers/ports';
import { CLI, ROOT, signet } from './helpers/cli';

const board = loadBoard('qemu-virt-arm64');
const available = existsSync(board.qemu!.firmware!) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const BOOT_TIMEOUT = 600_000; // TCG on a loaded 2-core machine; a liveness bound only

describe.skipIf(!available)('examples/router-admin on qemu-virt-arm64: provisioned TLS, HTTPS through the forward', () => {
  let work: string;
  let run: ChildProcess | undefined;
  let console_ = '';
  let port: number;
  let ca: string;
  let provisionOut = '';

  beforeAll(async () => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'router-admin-'));
    const keys = join(work, 'keys');
    ca = join(keys, 'vendor-ca.crt');
    const ok = (r: { code: number; stderr: string; stdout: string }) => {
      expect(r.code, r.stderr + r.stdout).toBe(0);
      return r.stdout;
    };
    ok(signet(['keys', 'init', '--dir', keys]));
    const app = join(work, 'router-admin.simg');
    ok(signet(['build', '--project', join(ROOT, 'examples', 'router-admin'), '--version', '3.1.4', '--security-counter', '2', '--keys', keys, '--out', app]));
    const disk = join(work, 'disk.img');
    ok(signet(['disk', app, '--board', board.id, '--keys', keys, '--out', disk, '--key-dtb', join(work, 'pub.dtb')], { timeout: 300_000 }));
    provisionOut = ok(signet(['device', 'provision', '--disk', disk, '--id', 'router-0001', '--board', board.id, '--ca-dir', keys, '--issue', '--host', 'localhost']));
    port = await freePort();
    run = spawn(process.execPath, [CLI, 'run', disk, '--board', board.id, '--key-dtb', join(work, 'pub.dtb'), '--net', 'user', '--forward', `${port}:443`], { stdio: ['ignore', 'pipe', 'pipe'] });
    run.stdout!.on('data', (d: Buffer) => (console_ += d.toString('latin1')));
    run.stderr!.on('data', (d: Buffer) => (console_ += d.toString('latin1')));
    const deadline = Date.now() + BOOT_TIMEOUT;
    while (!/app\[SERVING\]/.test(console_) && !/app\[NO-TLS\]|boot\[RECOVERY\]|host\[ERROR\]/.test(console_)) {
      if (Date.now() > deadline || run.exitCode !== null) throw new Error('the guest did not start serving; console:\n' + console_.slice(-3000));
      await new Promise((r) => setTimeout(r, 250));
    }
  }, BOOT_TIMEOUT + 300_000);

  afterAll(async () => {
    if (run && run.exitCode === null && run.signalCode === null) {
      // QEMU first, in case `signet run` failed to take it down (the last test checks it does).
      const qemu = spawnSync('pgrep', ['-P', String(run.pid), '-f', 'qemu-system'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
      for (const pid of qemu) try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
      const exited = new Promise((r) => run!.once('exit', r));
      if (run.exitCode === null) run.kill('SIGTERM');
      await exited;
    }
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('is provisioned with a key and certificate from the vendor CA, and the image carries none', () => {
    expect(provisionOut).toContain('file admin.crt, secret admin.key');
    const image = readFileSync(join(work, 'router-admin.simg')).toString('latin1');
    expect(image).not.toContain('PRIVATE KEY');
    expect(image).not.toContain('BEGIN CERTIFICATE');
  });

  it('boots through U-Boot verified boot and serves HTTPS on 443 with the provisioned certificate', () => {
    expect(console_).toMatch(/sha256,rsa2048:fit\+ OK/);
    expect(console_).toContain('boot[OK] slot=a version=3.1.4');
    expect(console_).toContain('app[SERVING] https=443');
    expect(console_).not.toMatch(/host\[(WARN|ERROR)\]|app\[(FAILED|NO-TLS)\]/);
  });

  it(`answers GET /api/status over HTTPS verified against keys/vendor-ca.crt (${HTTPS_CLIENT}) with its board and version`, async () => {
    const r = await httpsToGuest(port, ca, '/api/status');
    expect(r.status).toBe(200);
    const status = JSON.parse(r.body);
    expect(status).toMatchObject({ service: 'router-admin', version: '3.1.4', board: 'qemu-virt-arm64' });
    expect(Number.isInteger(status.uptimeS) && status.uptimeS >= 0).toBe(true);
  });

  it('serves its page on / and keeps the Wi-Fi name, refusing an invalid one', async () => {
    const page = await httpsToGuest(port, ca, '/');
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>Router admin</title>');
    const path = '/api/config/wifi-name';
    expect(JSON.parse((await httpsToGuest(port, ca, path)).body)).toEqual({ 'wifi-name': null });
    expect((await httpsToGuest(port, ca, path, 'PUT', 'home-net')).status).toBe(200);
    expect((await httpsToGuest(port, ca, path, 'PUT', 'x'.repeat(33))).status).toBe(400);
    expect(JSON.parse((await httpsToGuest(port, ca, path)).body)).toEqual({ 'wifi-name': 'home-net' });
    expect((await httpsToGuest(port, ca, '/nope')).status).toBe(404);
  });

  it('stops its QEMU when `signet run` is stopped with SIGTERM (no orphaned guest)', async () => {
    const guest = run!;
    const qemu = spawnSync('pgrep', ['-P', String(guest.pid), '-f', 'qemu-system'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).map(Number);
    expect(qemu.length).toBe(1);
    const exited = new Promise((r) => guest.once('exit', r));
    guest.kill('SIGTERM');
    await exited;
    const alive = () => { try { process.kill(qemu[0], 0); return true; } catch { return false; } };
    for (let i = 0; i < 200 && alive(); i++) await new Promise((r) => setTimeout(r, 50)); // liveness bound only
    expect(alive()).toBe(false);
  });
});
