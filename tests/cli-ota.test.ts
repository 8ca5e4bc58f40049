/**
 * The OTA flow as a vendor runs it from the CLI: server (real HTTPS + SQLite), identities,
 * a simulated device on its factory image, publish 1.3.0, roll out, the device updates through
 * a trial boot and confirms; a revoked device is refused.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, expectOneLineError, ROOT, signet } from './helpers/cli';

let work: string;
let server: ChildProcess;
let url: string;
const at = (p: string) => join(work, p);

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'signet-cli-ota-'));
  const ok = (args: string[]) => {
    const r = signet(args, { cwd: work });
    if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  ok(['keys', 'init', '--dir', at('keys')]);
  for (const [v, c] of [['1.2.0', '3'], ['1.3.0', '4']]) {
    ok(['build', '--project', join(ROOT, 'examples/hello'), '--version', v, '--security-counter', c, '--keys', at('keys'), '--out', at(`app-${v}.simg`), '--no-typecheck']);
  }
  ok(['server', 'keys', '--keys', at('keys'), '--out', at('server-keys')]);
  server = spawn(process.execPath, [CLI, 'server', '--data', at('ota-data'), '--keys', at('server-keys'), '--port', '0', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    server.stdout!.on('data', (d) => {
      out += d;
      const m = /"url":"([^"]+)"/.exec(out);
      if (m) resolve(m[1]);
    });
    server.on('exit', (c) => reject(new Error(`server exited ${c}: ${out}`)));
  });
  ok(['device', 'enroll', '--admin', '--id', 'admin', '--keys', at('keys'), '--out', at('admin')]);
  ok(['device', 'enroll', '--id', 'tv-0001', '--board', 'qemu-virt-arm64', '--keys', at('keys'), '--out', at('devices/tv-0001')]);
  ok(['device', 'enroll', '--id', 'tv-0002', '--board', 'qemu-virt-arm64', '--keys', at('keys'), '--out', at('devices/tv-0002')]);
  ok(['device', 'enroll', '--id', 'router-1', '--board', 'xen-arm32', '--keys', at('keys'), '--out', at('devices/router-1')]);
}, 180_000);

afterAll(() => {
  server?.kill('SIGTERM');
});

const simulate = (id: string, extra: string[] = []) =>
  signet(['device', 'simulate', '--dir', at(`devices/${id}`), '--board', 'qemu-virt-arm64', '--root', at('keys/root.json'), '--server', url, '--json', ...extra]);

describe('signet server / publish / rollout / device simulate', () => {
  it('a device updates from 1.2.0 to 1.3.0 through trial boot and confirm', () => {
    const first = simulate('tv-0001', ['--factory', at('app-1.2.0.simg')]);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ update: { outcome: 'none' }, running: { version: '1.2.0', slot: 'a' } });

    const pub = signet(['publish', at('app-1.3.0.simg'), '--server', url, '--keys', at('keys'), '--admin', at('admin')]);
    expect(pub.code, pub.stderr).toBe(0);
    const ro = signet(['rollout', 'create', '--board', 'qemu-virt-arm64', '--version', '1.3.0', '--percent', '100', '--halt-failure-rate', '0.05', '--server', url, '--admin', at('admin')]);
    expect(ro.code, ro.stderr).toBe(0);

    const upd = simulate('tv-0001');
    expect(upd.code, upd.stderr).toBe(0);
    const j = JSON.parse(upd.stdout);
    expect(j.update.outcome).toBe('staged');
    expect(j.running).toMatchObject({ version: '1.3.0', slot: 'b', confirmed: true });
    expect(j.lines).toEqual(expect.arrayContaining(['boot[TRIAL] slot=b version=1.3.0 tries=2', 'boot[CONFIRM] slot=b version=1.3.0 floor=4']));

    const st = signet(['rollout', 'status', '--server', url, '--admin', at('admin')]);
    expect(st.stdout).toMatch(/confirmed 1, failed 0/);
  });

  it('a device is enrolled for one board: without --board, or claiming another board, it is refused', () => {
    expectOneLineError(signet(['device', 'enroll', '--id', 'tv-0009', '--keys', at('keys'), '--out', at('devices/tv-0009')]), 'E_IDENTITY_BOARD');
    expectOneLineError(signet(['device', 'enroll', '--id', 'tv-0009', '--board', 'no-such-board', '--keys', at('keys'), '--out', at('devices/tv-0009')]), 'E_BOARD_UNKNOWN');
    expectOneLineError(signet(['device', 'enroll', '--id', 'tv-0009', '--board', 'qemu-virt-arm64', '--channel', 'Beta!', '--keys', at('keys'), '--out', at('devices/tv-0009')]), 'E_IDENTITY_BOARD');
    const info = JSON.parse(readFileSync(at('devices/router-1/identity.json'), 'utf8'));
    expect(info).toMatchObject({ id: 'router-1', role: 'device', board: 'xen-arm32', channel: 'stable' });
    // router-1 is enrolled for xen-arm32: simulating a qemu-virt-arm64 board with it is refused
    // before a flash file is written (the server would refuse its check-in: server-board-binding.test.ts).
    const r = simulate('router-1', ['--factory', at('app-1.2.0.simg')]);
    expectOneLineError(r, 'E_DEVICE_BOARD');
    expect(r.stderr).toContain('router-1 (' + at('devices/router-1') + ') is enrolled for board xen-arm32, not qemu-virt-arm64');
    expect(existsSync(at('devices/router-1/flash.img'))).toBe(false);
    // Refused before anything was written: the server does not know router-1.
    const list = signet(['device', 'list', '--server', url, '--admin', at('admin'), '--json']);
    expect(JSON.parse(list.stdout).devices.map((d: { id: string }) => d.id)).not.toContain('router-1');
  });

  it('a revoked device is refused, and a device without flash needs --factory', () => {
    expectOneLineError(simulate('tv-0002'), 'E_USAGE');
    const rv = signet(['device', 'revoke', '--id', 'tv-0002', '--reason', 'stolen', '--server', url, '--admin', at('admin')]);
    expect(rv.code, rv.stderr).toBe(0);
    const r = simulate('tv-0002', ['--factory', at('app-1.2.0.simg')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^error\[E_FETCH_REFUSED\]: .* answered HTTP 403 \(E_AUTH_REVOKED: tv-0002 was revoked: stolen\)/m);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });
});
