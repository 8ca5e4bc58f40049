/**
 * `signet flash` against real U-Boot (Debian's qemu_arm64 build) in qemu-system-aarch64: its
 * console on a unix socket, an empty virtio disk the size of the board's flash, the vendor's FIT
 * key in U-Boot's control DTB and the board's bootcmd in U-Boot's factory environment. The
 * shipped board file is used as is: its serial.envMode is "check" (this emulated board's U-Boot
 * cannot saveenv: QEMU 7.2's pflash drops out of status mode after one 4 KiB write buffer), so
 * the flasher checks the factory bootcmd is the board file's before it writes anything.
 *
 *  1. The real chain on an empty board: every byte of `signet disk`'s image goes over the line
 *     (~10 MiB gzipped: several minutes at the emulated UART's speed), the crc32 read-backs
 *     match, and after `reset` U-Boot verifies the flashed FIT, Linux starts, the boot stage
 *     verifies slot A and the app's line appears.
 *  2. Through a tty, as over /dev/ttyUSB0: node-serialport on a pty that socat wires to the
 *     board's console; a stand-in boot image so it takes seconds. The board's disk equals the
 *     image byte for byte and U-Boot verifies and starts the flashed FIT.
 *  3. Re-flashing: the boot image already on the board; `--skip-unchanged` confirms it by crc32
 *     and sends the rest; the board boots the app again.
 *  4. Ctrl-C in the middle of a transfer: a typed error, exit 130, the board not reset; running
 *     again with `--skip-unchanged` keeps what was written and completes the disk.
 *  5. `signet console`.
 *
 * flash-faults.test.ts covers a noisy line, bad storage, a board whose environment does not
 * match, and a failed saveenv. Timeouts are liveness bounds, not assertions.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBoard } from '../sdk/board';
import { readDiskBootImage } from '../sdk/disk/disk';
import { openPtyBridge } from './helpers/pty-pair';
import { CLI, ROOT, expectOneLineError } from './helpers/cli';
import { expectAppBooted, expectFlashedAfterBoot, expectOk as ok, flashEvents as events, flashSummary as summaryOf, flashWorkspace, runSignetAsync as runSignet, spawnSignet, withRig } from './helpers/flash';
import { skipUnlessCi } from './helpers/tools';

const board = loadBoard('qemu-virt-arm64');
const available = existsSync(board.qemu!.firmware!) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const part = (name: string) => board.flash.partitions.find((p) => p.name === name)!;
const BOOT_TIMEOUT = 600_000;
const TEST_TIMEOUT = 1_500_000;
/** ~10 MiB at 10–140 KiB/s (the emulated UART slows down when the machine is busy). */
const FULL_TIMEOUT = 3_600_000;
const STAND_IN_BANNER = 'SIGNET-FLASHED-STAND-IN-KERNEL';

describe.skipIf(skipUnlessCi(available))('signet flash with real U-Boot in QEMU', () => {
  let work: string;
  let keys: string;
  let realDisk: string;
  let keyDtbPath: string;
  let standIn: string;
  let keyDtb: Uint8Array;
  const factoryEnv = { bootdelay: '1', bootcmd: board.serial.env!.bootcmd! };

  beforeAll(async () => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'flash-uboot-'));
    ({ keys, disk: realDisk, keyDtbPath, keyDtb, standIn } = await flashWorkspace(work, board, STAND_IN_BANNER, ['--app-test-mode']));
  }, 900_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it.concurrent('the real chain on an empty board: every byte of the disk over the line, then U-Boot, Linux, the boot stage and the app', async () => {
    const disk = readFileSync(realDisk);
    await withRig({ board, keyDtb, env: factoryEnv }, async (rig) => {
      const r = await runSignet(['flash', realDisk, '--board', board.id, '--port', rig.address, '--keys', keys, '--json']);
      ok(r);
      const evs = events(r.stdout);
      expect(evs.find((e) => e.type === 'env')).toMatchObject({ name: 'bootcmd', action: 'checked' });
      const s = summaryOf(evs);
      expect(s).toMatchObject({ diskBytes: board.flash.size, writtenBytes: board.flash.size, unchangedBytes: 0, reset: true, envMode: 'check', saved: false });
      const plan = evs.find((e) => e.type === 'planned');
      if (plan?.type !== 'planned') throw new Error('no plan event');
      expect(s.sentBytes).toBeGreaterThanOrEqual(plan.gzBytes); // every data chunk went over the line
      // The real kernel and initramfs, not a stand-in: the FIT (gzip'd already) crosses the line whole.
      expect(s.sentBytes).toBeGreaterThan(0.95 * readDiskBootImage(realDisk, board).fit.length);
      process.stdout.write(`flash of the real disk: ${(s.sentBytes / 1048576).toFixed(1)} MiB sent at ${(s.serialBytesPerSecond / 1024).toFixed(1)} KiB/s, ${(s.elapsedMs / 1000).toFixed(0)} s, effective ${(s.effectiveBytesPerSecond / 1024).toFixed(0)} KiB/s\n`);

      expectAppBooted(await rig.waitFor('hello from signet', BOOT_TIMEOUT));
      await rig.stop();
      expectFlashedAfterBoot(rig.readDisk(0, board.flash.size), disk, board);
    });
  }, FULL_TIMEOUT);

  it.concurrent('Ctrl-C during a transfer: the board is left at its prompt, not reset, and --skip-unchanged resumes', async () => {
    await withRig({ board, keyDtb, env: factoryEnv }, async (rig) => {
      const run = spawnSignet(['flash', realDisk, '--board', board.id, '--port', rig.address, '--keys', keys, '--json']);
      const sending = () => events(run.stdout()).some((e) => e.type === 'progress' && e.sentBytes > 256 * 1024);
      for (let waited = 0; !sending(); waited += 100) {
        if (run.child.exitCode !== null || waited > BOOT_TIMEOUT) throw new Error(`the flash ended or never sent data:\n${run.stdout().slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      run.child.kill('SIGINT');
      const r = await run.done;
      expectOneLineError(r, 'E_FLASH_INTERRUPTED');
      expect(r.code).toBe(130);
      expect(r.stderr).toContain('--skip-unchanged');
      const first = events(r.stdout);
      expect(first.some((e) => e.type === 'done' || e.type === 'reset' || (e.type === 'env' && e.action === 'set'))).toBe(false);
      const written = first.flatMap((e) => (e.type === 'chunk' && e.action === 'written' ? [e.index] : []));
      expect(written.length).toBeGreaterThan(0);
      expect(rig.transcript).not.toContain('resetting');

      // Resumed: what was written before the interrupt is confirmed in place, not sent again.
      const again = await runSignet(['flash', realDisk, '--board', board.id, '--port', rig.address, '--keys', keys, '--json', '--skip-unchanged', '--no-reset']);
      ok(again);
      const second = events(again.stdout);
      const unchanged = new Set(second.flatMap((e) => (e.type === 'chunk' && e.action === 'unchanged' ? [e.index] : [])));
      for (const i of written) expect(unchanged.has(i), `chunk ${i}`).toBe(true);
      const s = summaryOf(second);
      expect(s).toMatchObject({ writtenBytes: board.flash.size - s.unchangedBytes, reset: false });
      expect(s.writtenBytes).toBeGreaterThan(0);
      await rig.stop();
      expect(Buffer.compare(rig.readDisk(0, board.flash.size), readFileSync(realDisk))).toBe(0);
    });
  }, FULL_TIMEOUT);

  it.concurrent('through a tty (node-serialport, as /dev/ttyUSB0): every byte sent and read back, then U-Boot verifies and starts the flashed FIT', async () => {
    await withRig({ board, keyDtb, env: factoryEnv }, async (rig) => {
      const tty = await openPtyBridge(mkdtempSync(join(work, 'tty-')), rig.address.slice('unix:'.length));
      try {
        const r = await runSignet(['flash', standIn, '--board', board.id, '--port', tty.path, '--keys', keys, '--json']);
        ok(r);
        const evs = events(r.stdout);
        expect(evs[0]).toMatchObject({ type: 'verified', board: board.id, slotA: { name: 'hello', version: '1.2.0', securityCounter: 3 }, slotB: null });
        expect(evs.find((e) => e.type === 'attached')).toMatchObject({ port: tty.path, uboot: expect.stringContaining('U-Boot 2023.01'), unzip: true });
        expect(evs.find((e) => e.type === 'env')).toMatchObject({ name: 'bootcmd', value: board.serial.env!.bootcmd, action: 'checked' });
        const s = summaryOf(evs);
        expect(s).toMatchObject({ port: tty.path, diskBytes: board.flash.size, writtenBytes: board.flash.size, unchangedBytes: 0, reset: true, envMode: 'check', saved: false });
        expect(s.sentBytes).toBeGreaterThan(0);
        expect(s.effectiveBytesPerSecond).toBeGreaterThan(0);
        const chunks = evs.filter((e) => e.type === 'chunk');
        expect(chunks.every((c) => c.type === 'chunk' && c.action === 'written')).toBe(true);
        expect(chunks.some((c) => c.type === 'chunk' && c.kind === 'data' && c.sentBytes > 0)).toBe(true);

        // What U-Boot did, from its own console: loady, storage writes and read-backs, crc32, reset.
        const session = rig.transcript;
        expect(session).toMatch(/## Total Size\s+= 0x[0-9a-f]+ = \d+ Bytes/);
        expect(session).toMatch(/virtio write: device 0 block # \d+, count \d+ \.\.\. \d+ blocks written: OK/);
        expect(session).toMatch(/virtio read: device 0 block # \d+, count \d+ \.\.\. \d+ blocks read: OK/);
        expect(session.indexOf('resetting')).toBeGreaterThan(session.lastIndexOf('crc32 for'));

        // After the reset: U-Boot's bootcmd reads the flashed boot partition and verifies it.
        const boot = await rig.waitFor(STAND_IN_BANNER, BOOT_TIMEOUT);
        expect(boot).toMatch(/Verifying Hash Integrity \.\.\. sha256,rsa2048:fit\+ OK/);
        expect(boot).toContain('Starting kernel ...');
        await rig.stop();
        const flashed = rig.readDisk(0, board.flash.size);
        expect(Buffer.compare(flashed, readFileSync(standIn))).toBe(0);
      } finally {
        await tty.close();
      }
    });
  }, TEST_TIMEOUT);

  it.concurrent('re-flashing: boot image already on the board, the rest flashed, the boot stage runs the app', async () => {
    const disk = readFileSync(realDisk);
    const boot = part('boot');
    const fitBytes = disk.readUInt32BE(boot.offset + 4); // FDT totalsize
    await withRig({ board, keyDtb, env: factoryEnv, preload: [{ offset: boot.offset, bytes: disk.subarray(boot.offset, boot.offset + fitBytes) }] }, async (rig) => {
      const r = await runSignet(
        ['flash', realDisk, '--board', board.id, '--port', rig.address, '--root', join(keys, 'root.json'), '--key-dtb', keyDtbPath, '--skip-unchanged', '--json'],
      );
      ok(r);
      const s = summaryOf(events(r.stdout));
      expect(s.unchangedBytes).toBeGreaterThanOrEqual(fitBytes - 1024 * 1024);
      expect(s.writtenBytes + s.unchangedBytes).toBe(board.flash.size);
      expect(s.sentBytes).toBeLessThan(1024 * 1024); // the boot image was not sent again

      expectAppBooted(await rig.waitFor('hello from signet', BOOT_TIMEOUT));
      await rig.stop();
      expectFlashedAfterBoot(rig.readDisk(0, board.flash.size), disk, board);
    });
  }, TEST_TIMEOUT);

  it.concurrent('signet console: a plain terminal to the board; Ctrl-] quits', async () => {
    await withRig({ board, keyDtb, env: factoryEnv }, async (rig) => {
      const p = spawn(process.execPath, [CLI, 'console', '--port', rig.address], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      const seen = (text: string) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no ${JSON.stringify(text)} in:\n${out.slice(-2000)}`)), BOOT_TIMEOUT);
          const check = () => {
            if (out.includes(text)) {
              clearTimeout(timer);
              p.stdout.off('data', check);
              resolve();
            }
          };
          p.stdout.on('data', check);
          check();
        });
      p.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
      const exited = new Promise<number | null>((resolve) => p.on('exit', resolve));
      await seen('Hit any key to stop autoboot');
      p.stdin.write(' ');
      await seen('=> ');
      p.stdin.write('version\r');
      await seen('aarch64-linux-gnu-gcc');
      p.stdin.write('\x1d');
      expect(await exited).toBe(0);
      expect(out).toContain('U-Boot 2023.01');
      expect(rig.bytesFromHost).toBe(' version\r'.length); // exactly what was typed, Ctrl-] not sent
    });
  }, TEST_TIMEOUT);
});
