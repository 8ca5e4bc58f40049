/**
 * `signet flash` for xen-arm32: the board's NOR flash (QEMU virt's bank 1, 64 MiB, 256 KiB erase
 * blocks) written through real U-Boot (Debian's qemu_arm build) over its serial console, then
 * booted by the Xen boot flow from the same file.
 *
 *  1. The board powers on holding something else (all zeros, so every erase and every program
 *     shows). The flash is under way in the boot image when the power is cut (SIGKILL of QEMU
 *     while a chunk is being programmed): the flasher ends with a coded error.
 *  2. Powered on again, `signet flash --skip-unchanged` resumes: the chunks written and verified
 *     before the cut are confirmed in place (SHA-256 by the board) and not sent again; the cut
 *     chunk is erased and programmed again. The bank then equals the disk byte for byte.
 *  3. Xen 4.17 boots the flashed file as the DomU's flash (runXen with that disk): the boot stage
 *     verifies slot A and the app prints its line.
 *
 * Two power-ons of U-Boot and one of Xen. Timeouts are liveness bounds, not assertions.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBoard, partition } from '../sdk/board';
import { runXen } from '../sdk/disk/run-xen';
import { CLI, ROOT, signet } from './helpers/cli';
import { expectOk, flashEvents, flashSummary } from './helpers/flash';
import { NorBoard } from './helpers/nor-rig';

const board = loadBoard('xen-arm32');
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const TIMEOUT = 3_600_000;

/** The CLI with its stdout and stderr (the console, --verbose) readable while it runs. */
function flash(args: string[]) {
  const child = spawn(process.execPath, [CLI, 'flash', ...args], { env: { ...process.env, SIGNET_PASSPHRASE: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('latin1')));
  const done = new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
  return { child, stdout: () => stdout, stderr: () => stderr, done };
}

describe('signet flash onto xen-arm32 NOR through real U-Boot, then Xen boots it', () => {
  let work: string;
  let keys: string;
  let disk: string;

  beforeAll(() => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'flash-xen-'));
    keys = join(work, 'keys');
    expectOk(signet(['keys', 'init', '--dir', keys]));
    expectOk(signet(['init', join(work, 'svc'), '--board', board.id]));
    const app = join(work, 'svc.simg');
    expectOk(signet(['build', '--project', join(work, 'svc'), '--version', '1.2.0', '--security-counter', '3', '--keys', keys, '--out', app, '--no-typecheck']));
    disk = join(work, 'disk.img');
    expectOk(signet(['disk', app, '--board', board.id, '--keys', keys, '--out', disk], { timeout: 900_000 }));
  }, 1_000_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('a power cut while programming, the flash resumed, the bank equals the disk, and Xen boots it to the app', async () => {
    const image = readFileSync(disk);
    // NOR: what signet disk leaves unwritten is erased flash, so most of the bank is only erased.
    const boot = partition(board, 'boot');
    expect(image.subarray(boot.offset + image.readUInt32BE(boot.offset + 4), boot.offset + boot.size).every((b) => b === 0xff)).toBe(true);
    const target = join(work, 'bank1.img');
    writeFileSync(target, new Uint8Array(board.flash.size)); // the board holds something else: zeros

    // 1. Power cut in the middle of programming a chunk of the boot image.
    let rig = await NorBoard.powerOn(board, target);
    const first = flash([disk, '--board', board.id, '--port', rig.address, '--keys', keys, '--json', '--no-reset', '--verbose']);
    const programs = () => first.stderr().split('while itest $sp').length - 1;
    const bootWritten = () => flashEvents(first.stdout()).some((e) => e.type === 'chunk' && e.action === 'written' && e.offset === boot.offset);
    try {
      for (let waited = 0; !bootWritten(); waited += 200) {
        if (first.child.exitCode !== null || waited > TIMEOUT) throw new Error(`the flash ended before the boot image:\n${first.stdout().slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const before = programs();
      while (programs() === before && first.child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 1500)); // inside the program loop
      await rig.powerCut();
    } finally {
      await rig.stop();
    }
    const cut = await first.done;
    expect(cut.code).not.toBe(0);
    expect(cut.stderr.trim().split('\n').pop()).toMatch(/^error\[E_[A-Z_]+\]/);
    const written = flashEvents(cut.stdout).flatMap((e) => (e.type === 'chunk' && e.action === 'written' && e.kind === 'data' ? [e.index] : []));
    expect(written.length).toBeGreaterThanOrEqual(4); // GPT, slot A, state, the first boot chunk
    expect(Buffer.compare(readFileSync(target), image)).not.toBe(0);

    // 2. Powered on again: resumed with --skip-unchanged.
    rig = await NorBoard.powerOn(board, target);
    let again;
    try {
      again = await flash([disk, '--board', board.id, '--port', rig.address, '--keys', keys, '--json', '--no-reset', '--skip-unchanged']).done;
    } finally {
      await rig.stop();
    }
    expectOk(again);
    const evs = flashEvents(again.stdout);
    const unchanged = new Set(evs.flatMap((e) => (e.type === 'chunk' && e.action === 'unchanged' ? [e.index] : [])));
    for (const i of written) expect(unchanged.has(i), `chunk ${i}`).toBe(true);
    const s = flashSummary(evs);
    expect(s).toMatchObject({ diskBytes: board.flash.size, reset: false });
    expect(s.writtenBytes).toBeGreaterThan(0);
    expect(s.writtenBytes + s.unchangedBytes).toBe(board.flash.size);
    expect(Buffer.compare(readFileSync(target), image)).toBe(0);
    process.stdout.write(`flash-xen: resumed flash ${(s.elapsedMs / 1000).toFixed(0)} s, ${(s.sentBytes / 1024).toFixed(0)} KiB sent\n`);

    // 3. The Xen boot flow on the flashed bank.
    const r = await runXen({ board, disk: target, halt: true });
    expect(r.exitCode, r.rawLines.slice(-30).join('\n')).toBe(0);
    expect(r.lines).toContain('boot[OK] slot=a version=1.2.0');
    expect(r.lines.indexOf('hello from svc')).toBeGreaterThan(r.lines.indexOf('boot[OK] slot=a version=1.2.0'));
  }, TIMEOUT);
});
