/**
 * `signet flash` findings 25–27 of issue 10, against real U-Boot (Debian's qemu_arm64 2023.01) in
 * QEMU, one emulated board for the whole file (tests/helpers/uboot-rig.ts), in order:
 *
 *  25. --skip-unchanged onto a board whose state partition holds *another* valid boot state (each
 *      copy ends in its own CRC-32, so a CRC-32 over the page is the same for both): the state
 *      must be found changed and written (a SHA-256 the board computes, not a CRC, decides).
 *  27. The cable pulled in the middle of a `loady`, and the flash started again at once with
 *      --skip-unchanged: the board, still inside loady, is cancelled out of it and the flash
 *      completes (it used to end in E_UBOOT_NO_PROMPT).
 *  26. On a line that damages 1 % of the bytes both ways, a small change (another boot image)
 *      completes, within bounded repeats; on a line far worse, the flash stops with
 *      E_FLASH_LINE and the measured error rate after a bounded number of bytes, not a crawl.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBoard } from '../sdk/board';
import { loadFitSigner } from '../sdk/disk/fit-key';
import { crc32 } from '../sdk/util/crc32';
import { ROOT, expectOneLineError } from './helpers/cli';
import { expectOk as ok, flashEvents as events, flashSummary as summaryOf, flashWorkspace, runSignetAsync as runSignet, spawnSignet } from './helpers/flash';
import { standInBootDisk, UbootRig } from './helpers/uboot-rig';
import { skipUnlessCi } from './helpers/tools';

const board = loadBoard('qemu-virt-arm64');
const available = existsSync(board.qemu!.firmware!) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const state = board.flash.partitions.find((p) => p.name === 'state')!;
const TEST_TIMEOUT = 1_500_000;

/** The same boot state layout with other contents: every valid copy gets a higher seq and security floor, and its CRC-32 again. */
function anotherState(page: Uint8Array): Uint8Array {
  const out = page.slice();
  let copies = 0;
  for (const at of [0, page.length / 2]) {
    const copy = out.subarray(at, at + 64);
    if (!(copy[0] === 0x53 && copy[1] === 0x42 && copy[2] === 0x53 && copy[3] === 0x54)) continue;
    const v = new DataView(copy.buffer, copy.byteOffset, 64);
    v.setUint32(8, v.getUint32(8, true) + 5, true); // seq
    v.setUint32(16, 4, true); // securityFloor: what 1.3.0 (counter 4) left behind
    v.setUint32(60, crc32(copy.subarray(0, 60)), true);
    copies++;
  }
  if (copies === 0) throw new Error('the disk has no valid boot-state copy to vary');
  return out;
}

describe.skipIf(skipUnlessCi(available))('signet flash: unchanged means the same bytes, a pulled cable, a bad line (issue 10, 25–27)', () => {
  let work: string;
  let keys: string;
  let standIn: string;
  let otherBoot: string;
  let worseBoot: string;
  let rig: UbootRig;
  const factoryEnv = { bootdelay: '1', bootcmd: board.serial.env!.bootcmd! };
  const flash = (image: string, extra: string[]) => ['flash', image, '--board', board.id, '--port', rig.address, '--keys', keys, '--json', '--no-reset', ...extra];

  beforeAll(async () => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'flash-hardening-'));
    let disk: string;
    let keyDtb: Uint8Array;
    ({ keys, keyDtb, standIn, disk } = await flashWorkspace(work, board, 'SIGNET-STAND-IN'));
    const signer = await loadFitSigner(keys);
    const image = new Uint8Array(readFileSync(disk));
    otherBoot = join(work, 'other-boot.img');
    writeFileSync(otherBoot, await standInBootDisk(image, board, signer, 'SIGNET-OTHER-BOOT-IMAGE'));
    worseBoot = join(work, 'worse-boot.img');
    writeFileSync(worseBoot, await standInBootDisk(image, board, signer, 'SIGNET-THIRD-BOOT-IMAGE'));
    rmSync(disk);
    // The board holds the stand-in disk already, except its boot state: another, valid one.
    const stand = new Uint8Array(readFileSync(standIn));
    const page = stand.subarray(state.offset, state.offset + 65536);
    rig = await UbootRig.start({
      board,
      keyDtb,
      env: factoryEnv,
      preload: [
        { offset: 0, bytes: stand.subarray(0, state.offset) },
        { offset: state.offset, bytes: anotherState(page) },
        { offset: state.offset + 65536, bytes: stand.subarray(state.offset + 65536) },
      ],
      noise: { seed: 20261206 },
    });
  }, 900_000);

  afterAll(async () => {
    if (rig) {
      await rig.stop();
      rig.cleanup();
    }
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('25: a state page that ends in its own CRC-32 and differs is not "unchanged": it is written', async () => {
    const stand = new Uint8Array(readFileSync(standIn));
    const before = rig.readDisk(state.offset, 65536);
    expect(crc32(before)).toBe(crc32(stand.subarray(state.offset, state.offset + 65536))); // the residue: CRC-32 cannot tell them apart
    expect(Buffer.compare(before, stand.subarray(state.offset, state.offset + 65536))).not.toBe(0);

    const r = await runSignet(flash(standIn, ['--skip-unchanged']));
    ok(r);
    const evs = events(r.stdout);
    const stateChunk = evs.find((e) => e.type === 'chunk' && e.offset <= state.offset && e.offset + e.bytes > state.offset);
    expect(stateChunk).toMatchObject({ action: 'written' });
    expect(Buffer.compare(rig.readDisk(0, board.flash.size), stand)).toBe(0);
    const s = summaryOf(evs);
    expect(s.writtenBytes).toBeLessThanOrEqual(1024 * 1024); // the rest was found in place
    expect(evs.find((e) => e.type === 'digests')).toMatchObject({ available: true });
    expect(rig.transcript).toContain('sha256+');
  }, TEST_TIMEOUT);

  it('27: the cable pulled in the middle of loady, the flash run again at once: the board is taken out of loady and the flash completes', async () => {
    // Uncompressed, so that the boot image's ~450 KiB take a while on the line.
    const cut = rig.cutDuringTransfer(64 * 1024);
    const first = spawnSignet(flash(otherBoot, ['--no-compress']));
    await cut;
    const r1 = await first.done;
    expect(r1.code).not.toBe(0);
    const t = rig.transcript;
    expect(t.slice(t.lastIndexOf('Ready for binary (ymodem) download'))).not.toMatch(/## Total Size|=> /); // U-Boot is still inside loady

    const again = await runSignet(flash(otherBoot, ['--skip-unchanged']));
    ok(again);
    const evs = events(again.stdout);
    expect(summaryOf(evs).writtenBytes).toBeGreaterThan(0);
    expect(Buffer.compare(rig.readDisk(0, board.flash.size), readFileSync(otherBoot))).toBe(0);
  }, TEST_TIMEOUT);

  it('26: at 1 % damage both ways a small change completes with bounded repeats', async () => {
    const noise = { corruptRate: 0.006, dropRate: 0.004 };
    rig.setNoise({ toBoard: noise, fromBoard: noise });
    const line0 = rig.lineStats;
    const r = await runSignet(flash(standIn, ['--skip-unchanged']));
    const line = rig.lineStats;
    rig.setNoise({});
    const damaged = line.toBoard.corrupted + line.toBoard.dropped - line0.toBoard.corrupted - line0.toBoard.dropped;
    process.stdout.write(`1 % line: ${line.toBoard.bytes - line0.toBoard.bytes} bytes to the board (${damaged} damaged), exit ${r.code}\n`);
    ok(r);
    const s = summaryOf(events(r.stdout));
    process.stdout.write(`1 % line: ${JSON.stringify({ sent: s.sentBytes, wire: s.wireBytes, retries: s.retries, retyped: s.retypedLines, ms: s.elapsedMs })}\n`);
    expect(damaged).toBeGreaterThan(0);
    expect(s.sentBytes).toBeGreaterThan(0);
    expect(s.retries).toBeLessThanOrEqual(10);
    expect(s.retypedLines).toBeLessThan(300); // short check lines, damaged echoes shown again: 79 in a run here (933 before)
    expect(s.wireBytes).toBeLessThan(8 * s.sentBytes + 64 * 1024); // re-sends bounded: no whole-chunk crawl
    expect(line.toBoard.bytes - line0.toBoard.bytes).toBeLessThan(512 * 1024);
    expect(Buffer.compare(rig.readDisk(0, board.flash.size), readFileSync(standIn))).toBe(0);
  }, TEST_TIMEOUT);

  it('26: on a line too bad to make progress the flash stops with E_FLASH_LINE and the measured error rate, after bounded traffic', async () => {
    const noise = { corruptRate: 0.05, dropRate: 0.03 };
    rig.setNoise({ toBoard: noise, fromBoard: noise });
    const line0 = rig.lineStats;
    const r = await runSignet(flash(worseBoot, ['--skip-unchanged']));
    const line = rig.lineStats;
    rig.setNoise({});
    expectOneLineError(r, 'E_FLASH_LINE');
    expect(r.stderr).toMatch(/damages about \d+(\.\d)? % of the bytes/);
    expect(r.stdout).not.toMatch(/"type":"(done|reset)"/);
    expect(line.toBoard.bytes - line0.toBoard.bytes).toBeLessThan(256 * 1024);
  }, TEST_TIMEOUT);
});
