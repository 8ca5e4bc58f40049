/**
 * `signet flash` on a bad day, against real U-Boot in QEMU (see flash-uboot.test.ts for the rig):
 *
 *  - a noisy line: the relay between the flasher and U-Boot corrupts or drops about 1 % of the
 *    bytes going to the board (and half that coming back). The flash either recovers by
 *    retries — and then the board's disk equals the image — or fails with a typed code and
 *    never reports success or resets the board;
 *  - storage that does not keep what is written (the board file's write command spoils the
 *    first byte in RAM before writing): the crc32 read-back catches it and the flash fails with
 *    E_FLASH_READBACK, never reported as done;
 *  - a board whose U-Boot environment would not boot the disk, where it cannot be saved
 *    (serial.envMode "check", as this emulated board's NOR flash): refused with E_FLASH_ENV
 *    before a byte of the disk is sent or written;
 *  - an environment U-Boot cannot save, with a board file that says it can ("save"): the disk
 *    is written and verified, but the flash fails with E_FLASH_COMMAND and the board is not reset.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBoard, type Board } from '../sdk/board';
import { ROOT, expectOneLineError } from './helpers/cli';
import { boardsWith as boardsIn, flashEvents as events, flashWorkspace, runSignetAsync as runSignet, withRig } from './helpers/flash';
import { skipUnlessCi } from './helpers/tools';

const board = loadBoard('qemu-virt-arm64');
const available = existsSync(board.qemu!.firmware!) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const TEST_TIMEOUT = 1_800_000;

describe.skipIf(skipUnlessCi(available))('signet flash on a noisy line, bad storage, and an environment that is wrong or cannot be saved', () => {
  let work: string;
  let keys: string;
  let standIn: string;
  let keyDtb: Uint8Array;
  const factoryEnv = { bootdelay: '1', bootcmd: board.serial.env!.bootcmd! };
  const boardsWith = (edit: (b: Board) => void): string => boardsIn(work, board, edit);

  beforeAll(async () => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'flash-faults-'));
    ({ keys, keyDtb, standIn } = await flashWorkspace(work, board, 'SIGNET-STAND-IN'));
    rmSync(join(work, 'disk.img'));
  }, 900_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it.concurrent('a noisy line: recovered by retries with every byte right, or a typed failure that is never success', async () => {
    // A board flashed before with everything but the app image and the boot state: those cross
    // the noisy line (YMODEM, 128-byte blocks), everything else is confirmed in place by crc32.
    // Every byte over this line costs seconds; the whole disk would take many minutes.
    const image = readFileSync(standIn);
    const slotA = board.flash.partitions.find((p) => p.name === 'slot_a')!;
    const state = board.flash.partitions.find((p) => p.name === 'state')!;
    await withRig({
      board,
      keyDtb,
      env: factoryEnv,
      preload: [
        { offset: 0, bytes: image.subarray(0, slotA.offset) },
        { offset: slotA.offset + 65536, bytes: image.subarray(slotA.offset + 65536, state.offset) },
        { offset: state.offset + state.size, bytes: image.subarray(state.offset + state.size) },
      ],
      noise: { seed: 20240611, toBoard: { corruptRate: 0.006, dropRate: 0.004 }, fromBoard: { corruptRate: 0.003, dropRate: 0.002 } },
    }, async (rig) => {
      const r = await runSignet(['flash', standIn, '--board', board.id, '--port', rig.address, '--keys', keys, '--json', '--no-reset', '--skip-unchanged']);
      const evs = events(r.stdout);
      const line = rig.lineStats;
      // The line really was noisy, in both directions.
      expect(line.toBoard.corrupted + line.toBoard.dropped).toBeGreaterThan(line.toBoard.bytes * 0.005);
      expect(line.fromBoard.corrupted + line.fromBoard.dropped).toBeGreaterThan(0);
      process.stdout.write(`noisy line: to board ${JSON.stringify(line.toBoard)}, from board ${JSON.stringify(line.fromBoard)}; exit ${r.code}\n`);
      await rig.stop();
      if (r.code === 0) {
        const done = evs.find((e) => e.type === 'done');
        if (done?.type !== 'done') throw new Error('no summary');
        expect(done.summary.writtenBytes + done.summary.unchangedBytes).toBe(board.flash.size);
        expect(done.summary.writtenBytes).toBeGreaterThanOrEqual(65536 * 2); // slot A's page and the state
        expect(done.summary.sentBytes).toBeGreaterThan(0);
        expect(done.summary.retries + done.summary.retypedLines).toBeGreaterThan(0);
        expect(Buffer.compare(rig.readDisk(0, board.flash.size), readFileSync(standIn))).toBe(0);
      } else {
        const code = /^error\[(E_[A-Z_]+)\]/.exec(r.stderr.trim())?.[1];
        expect(code, r.stderr).toMatch(/^E_(FLASH_(TRANSFER|READBACK|COMMAND|CONSOLE|LINE)|UBOOT_[A-Z_]+)$/);
        expect(evs.some((e) => e.type === 'done')).toBe(false);
        expect(r.stdout).not.toMatch(/"type":"(saved|reset)"/);
      }
    });
  }, TEST_TIMEOUT);

  it.concurrent('storage that does not keep what is written: caught by the crc32 read-back, never reported as done', async () => {
    const boards = boardsWith((b) => {
      b.serial.write = `mw.b {addr} 0x5a 1; ${b.serial.write}`;
    });
    await withRig({ board, keyDtb, env: factoryEnv }, async (rig) => {
      const r = await runSignet(['flash', standIn, '--board', board.id, '--port', rig.address, '--keys', keys, '--attempts', '2', '--json'], { SIGNET_BOARDS: boards });
      expectOneLineError(r, 'E_FLASH_READBACK');
      expect(r.stderr).toContain('the flash is NOT complete');
      const evs = events(r.stdout);
      expect(evs.some((e) => e.type === 'done')).toBe(false);
      expect(evs.filter((e) => e.type === 'retry').map((e) => e.type === 'retry' && e.code)).toEqual(['E_FLASH_READBACK']);
      // U-Boot read back something other than what was staged, and was never reset.
      expect(rig.transcript).toMatch(/blocks written: OK/);
      expect(rig.transcript).not.toContain('resetting');
    });
  }, TEST_TIMEOUT);

  it.concurrent('a board whose environment would not boot the disk and cannot be saved: refused before anything is written', async () => {
    // No factory environment: U-Boot starts with its built-in one, whose bootcmd is distro boot.
    await withRig({ board, keyDtb }, async (rig) => {
      const r = await runSignet(['flash', standIn, '--board', board.id, '--port', rig.address, '--keys', keys, '--json']);
      expectOneLineError(r, 'E_FLASH_ENV');
      expect(r.stderr).toContain('bootcmd');
      expect(r.stderr).toContain('nothing was written');
      const evs = events(r.stdout);
      expect(evs.some((e) => e.type === 'attached')).toBe(true);
      expect(evs.some((e) => e.type === 'chunk' || e.type === 'env' || e.type === 'done')).toBe(false);
      expect(rig.transcript).toMatch(/bootcmd=.*distro_bootcmd/);
      expect(rig.transcript).not.toMatch(/loady|virtio write|resetting/);
      await rig.stop();
      expect(rig.readDisk(0, board.flash.size).every((b) => b === 0)).toBe(true);
    });
  }, TEST_TIMEOUT);

  it.concurrent('an environment U-Boot cannot save (board file says "save"): the disk is verified, the flash still fails and the board is not reset', async () => {
    const boards = boardsWith((b) => (b.serial.envMode = 'save'));
    await withRig({ board, keyDtb, env: factoryEnv }, async (rig) => {
      const r = await runSignet(['flash', standIn, '--board', board.id, '--port', rig.address, '--keys', keys, '--json'], { SIGNET_BOARDS: boards });
      expectOneLineError(r, 'E_FLASH_COMMAND');
      expect(r.stderr).toContain('saveenv');
      const evs = events(r.stdout);
      expect(evs.some((e) => e.type === 'env' && e.name === 'bootcmd')).toBe(true);
      expect(evs.some((e) => e.type === 'done' || e.type === 'saved' || e.type === 'reset')).toBe(false);
      expect(rig.transcript).toContain('Saving Environment to Flash');
      expect(rig.transcript).not.toContain('resetting');
      await rig.stop();
      expect(Buffer.compare(rig.readDisk(0, board.flash.size), readFileSync(standIn))).toBe(0);
    });
  }, TEST_TIMEOUT);
});
