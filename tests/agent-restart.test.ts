/**
 * The OTA agents survive a service restart. The boot stage runs the agents (app images and boot
 * images) on the service's event loop; when a handler throws, it closes every handle
 * (closeAll) and runs the service again, and the agents must run again with it, once.
 *
 * Real parts, no QEMU: the real boot-stage bundle on the host build of the C host (Duktape,
 * libuv, mbed TLS, SHA-256 and RSA for the FIT check) over an A/B disk file whose config store
 * holds the device's identity and the server; the update server on loopback (HTTPS, mutual TLS,
 * SQLite) with a combined rollout (app 1.3.0 + boot image 2.0.0) created before the device boots.
 * The app's first run throws 1 ms after it starts, long before the agent's first check-in (1 s);
 * after the restart, one agent checks in, stages both (app slot b, boot slot b) and reboots.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBootStage } from '../bootloader/build';
import { buildNativeHost } from '../bootloader/native/build';
import { PartitionDevice } from '../bootloader/src/block';
import { FileBlockDevice } from '../bootloader/src/block-file';
import { provisionBootEnv, readBootEnv } from '../bootloader/src/bootenv';
import { ConfigStore } from '../bootloader/src/configstore';
import { provisionFlash } from '../bootloader/src/provision';
import type { Board } from '../sdk/board';
import { abLayout, type AbLayout } from '../sdk/disk/boot-ab';
import { loadFitSigner, type FitSigner } from '../sdk/disk/fit-key';
import { AGENT_FILES, AGENT_SETTINGS } from '../sdk/ota/agent-device';
import { utf8Encode } from '../sdk/util/bytes';
import { loadFitPublicKeys } from '../update-server/start';
import { SMALL_LAYOUT, smallBoard } from './helpers/boot';
import { testBootFit } from './helpers/boot-fit';
import { makeImage } from './helpers/fixtures';
import { enroll, makeRepoKeys, publishImage, signetAsync, startTestServer, tempDir, type RepoKeys, type TestServer } from './server-fixture';

const BOARD = 'qemu-virt-arm64';
const KiB = 1024;
/** smallBoard's flash, large enough for boot_b (at 1 MiB) and bootenv (at 2 MiB) after it. */
const FLASH_BYTES = 4 * 1024 * KiB;
/** The C host's exit status for reboot() outside PID 1 (bootloader/native/host.c). */
const EXIT_REBOOT_HOSTMODE = 3;

let work: string;
let k: RepoKeys;
let fitSigner: FitSigner;
let server: TestServer;
let url: string;
let host: string;
let bootJs: string;
let board: Board;
let ab: AbLayout;

function bootFit(version: string, counter: number): Uint8Array {
  return testBootFit({ version, counter, signer: fitSigner });
}

/** The service: counts its runs in a global; the first run's timer throws 1 ms in. */
const APP = `var g = Function('return this')();
g.runs = (g.runs || 0) + 1;
__signet_host.log('app[run] ' + g.runs);
__signet_host.confirm();
if (g.runs === 1) __signet_host.uv.timerStart(function (e) { if (e === 'timeout') throw new Error('crash in run 1'); }, 1, 0);
`;

beforeAll(async () => {
  work = tempDir('signet-agent-restart-');
  k = await makeRepoKeys(work);
  fitSigner = await loadFitSigner(k.keys);
  const fitKeys = loadFitPublicKeys(k.serverKeys);
  server = await startTestServer(k, join(work, 'data'), { fitKeys });
  url = server.url;
  board = { ...smallBoard(), flash: { ...smallBoard().flash, size: FLASH_BYTES } };
  ab = abLayout(board)!;
  host = await buildNativeHost('host');
  const rootJson = readFileSync(join(k.keys, 'root.json'), 'utf8');
  const b = await buildBootStage({ board, rootJson, testMode: true, fitKey: fitKeys[0], bootRelease: { version: '1.0.0', securityCounter: 1 } });
  bootJs = join(work, 'boot.js');
  writeFileSync(bootJs, b.code);
}, 300_000);

afterAll(async () => {
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The device's disk: app 1.2.0 in slot A, boot image 1.0.0 in boot_a, its identity and the server in the config store. */
async function deviceDisk(id: string): Promise<string> {
  const ident = await enroll(k, work, id);
  const path = join(work, `${id}.img`);
  writeFileSync(path, new Uint8Array(FLASH_BYTES).fill(0xff));
  const dev = new FileBlockDevice(path, board.flash.blockSize);
  try {
    const app = await makeImage({ version: '1.2.0', securityCounter: 3, app: utf8Encode(APP), signers: [k.targets] });
    provisionFlash(dev, SMALL_LAYOUT, { slotA: app, securityFloor: 3 });
    const fit = bootFit('1.0.0', 1);
    const padded = new Uint8Array(ab.boot_a.size).fill(0xff);
    padded.set(fit);
    dev.write(ab.boot_a.offset / board.flash.blockSize, padded);
    provisionBootEnv(new PartitionDevice(dev, ab.bootenv.offset, ab.bootenv.size), 'a', 3);
    const put = (kind: 'file' | 'secret' | 'setting', key: string, value: string) => ({ kind, key, value: utf8Encode(value) });
    ConfigStore.inStatePartition(new PartitionDevice(dev, SMALL_LAYOUT.state.offset, SMALL_LAYOUT.state.size)).putAll([
      put('file', AGENT_FILES.cert, ident.certPem),
      put('secret', AGENT_FILES.key, ident.keyPem),
      put('file', AGENT_FILES.ca, ident.caPem),
      put('setting', AGENT_SETTINGS.server, url),
      put('setting', AGENT_SETTINGS.servername, 'localhost'),
      put('setting', AGENT_SETTINGS.first, '1'),
      put('setting', AGENT_SETTINGS.interval, '2'),
    ]);
    dev.flush();
  } finally {
    dev.close();
  }
  return path;
}

/** Runs the C host on the disk until it exits (60 s at most: then it is killed and the lines so far returned). */
function runHost(disk: string): Promise<{ status: number | null; lines: string[]; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(host, [bootJs, '--disk', disk, '--restart-backoff-ms', '5'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const kill = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('close', (status) => {
      clearTimeout(kill);
      resolve({ status, lines: out.trim().split('\n'), stderr: err });
    });
  });
}

describe('a service restart on the device', () => {
  it('starts the agents again, once: after the restart they take a combined release and reboot into it', async () => {
    const adminId = await enroll(k, work, 'ops', true);
    const adminArgs = ['--server', url, '--admin', join(work, 'ids', 'ops')];
    await publishImage(k, url, adminId, await makeImage({ version: '1.3.0', securityCounter: 4, app: utf8Encode(APP), signers: [k.targets] }), work);
    const fit2 = bootFit('2.0.0', 2);
    writeFileSync(join(work, 'boot-2.0.0.itb'), fit2);
    const pub = await signetAsync(['publish', join(work, 'boot-2.0.0.itb'), '--keys', k.keys, ...adminArgs]);
    expect(pub.code, pub.stderr).toBe(0);
    const created = await signetAsync(['rollout', 'create', '--board', BOARD, '--version', '1.3.0', '--boot-version', '2.0.0', '--percent', '100', '--halt-failure-rate', '0.5', ...adminArgs]);
    expect(created.code, created.stderr).toBe(0);

    const disk = await deviceDisk('tv-restart-1');
    const r = await runHost(disk);
    const lines = r.lines.filter((l) => /^(app|boot\[APP|ota\[(AGENT|REBOOT|BOOT-ARMED|STAGED))/.test(l));
    const restartAt = lines.findIndex((l) => l.startsWith('boot[APP-RESTART]'));
    expect(restartAt, r.lines.join('\n')).toBeGreaterThan(0);
    // One agent per run of the service: started at boot, and again (once) after the restart.
    expect(lines.slice(0, restartAt).filter((l) => l.startsWith('ota[AGENT]'))).toHaveLength(1);
    expect(lines.slice(restartAt).filter((l) => l.startsWith('ota[AGENT]')), r.lines.join('\n')).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('app[run]'))).toEqual(['app[run] 1', 'app[run] 2']);
    // The restarted agent checked in and took both offers: the app agent's cycle and the boot-image agent's.
    expect(lines.filter((l) => l.startsWith('ota[REBOOT]')), r.lines.join('\n')).toEqual(['ota[REBOOT] slot=b version=1.3.0 boot_slot=b boot_version=2.0.0']);
    expect(lines.filter((l) => l.startsWith('ota[BOOT-ARMED]'))).toHaveLength(1);
    expect(r.status, r.stderr).toBe(EXIT_REBOOT_HOSTMODE);
    expect(r.stderr).toContain("host[ERROR] uncaught in a 'timeout' handler at app.js:5: Error: crash in run 1");

    const dev = new FileBlockDevice(disk, board.flash.blockSize, false);
    try {
      expect(readBootEnv(new PartitionDevice(dev, ab.bootenv.offset, ab.bootenv.size)).vars).toMatchObject({ boot_slot: 'b', boot_good: 'a' });
    } finally {
      dev.close();
    }
    const slotB = readFileSync(disk).subarray(ab.boot_b.offset, ab.boot_b.offset + fit2.length);
    expect(Buffer.from(slotB).equals(Buffer.from(fit2))).toBe(true);
  }, 180_000);
});
