// A/B boot slots with U-Boot's boot counter (issue 13; docs/boot-state.md §A/B boot slots).
//
// Unit: the boot environment block is U-Boot's `env export -c` format byte for byte (a block
// Debian's U-Boot wrote is the golden vector), the copy with the higher ab_seq is current, a torn
// copy is refused, a write goes to the other copy, and a disk without the block is never written.
//
// Real: Debian's U-Boot 2023.01 in QEMU runs the A/B bootcmd (sdk/disk/boot-ab.ts) on disks made
// by `signet disk --boot-ab`, two guests at once:
//  1. boot_a holds a properly signed FIT whose kernel panics (rdinit points nowhere, panic=-1),
//     boot_b a good one: U-Boot boots boot_a `bootlimit` times, each panic resets (no -no-reboot),
//     then it switches to boot_b, whose boot stage confirms it: boot_slot=b, bootcount=0.
//  2. a good boot_a boots once and its boot stage puts bootcount back to 0.
// Timeouts are liveness bounds, not assertions.
import { spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PartitionDevice } from '../bootloader/src/block';
import { FileBlockDevice } from '../bootloader/src/block-file';
import { SimFlash } from '../bootloader/src/block-sim';
import {
  BOOTENV_BLOCK, BOOTENV_VARS, confirmBootSlot, decodeBootEnvBlock, encodeBootEnvBlock, provisionBootEnv, readBootEnv, writeBootEnv,
} from '../bootloader/src/bootenv';
import { loadBoard } from '../sdk/board';
import { abLayout, type AbLayout } from '../sdk/disk/boot-ab';
import { buildBootImage } from '../sdk/disk/boot-image';
import { buildDisk } from '../sdk/disk/disk';
import { decodeGpt } from '../sdk/disk/gpt';
import { bootAbDisk } from './helpers/boot-ab';
import { expectOneLineError, ROOT, signet } from './helpers/cli';

const board = loadBoard('qemu-virt-arm64');

/** What Debian's U-Boot 2023.01 wrote with `env export -c -s 0x200` (captured from its virtio write). */
function ubootWrittenBlock(): Uint8Array {
  const b = new Uint8Array(BOOTENV_BLOCK);
  b.set([0xf5, 0xdf, 0xe5, 0xb8], 0);
  b.set(new TextEncoder().encode('ab_seq=39\0boot_good=a\0boot_slot=b\0bootcount=1\0bootlimit=2\0'), 4);
  return b;
}

function envDevice(): SimFlash {
  return new SimFlash(128 * 512, 512);
}

describe('boot environment block', () => {
  it("is U-Boot's env export -c format, byte for byte", () => {
    const vars = { ab_seq: '39', boot_good: 'a', boot_slot: 'b', bootcount: '1', bootlimit: '2' };
    expect(Buffer.from(encodeBootEnvBlock(vars, BOOTENV_VARS)).equals(Buffer.from(ubootWrittenBlock()))).toBe(true);
    expect(decodeBootEnvBlock(ubootWrittenBlock())).toEqual({ vars });
  });

  it('refuses a torn or altered copy and reads the other one', () => {
    const dev = envDevice();
    provisionBootEnv(dev, 'a', 3);
    let r = readBootEnv(dev);
    expect(r.vars).toEqual({ ab_seq: '2', boot_good: 'a', boot_slot: 'a', bootcount: '0', bootlimit: '3' });
    expect(r.current).toBe(1);
    // A newer state goes into copy 0 (the one not current); then copy 0 is torn: copy 1 again.
    r = writeBootEnv(dev, r, { boot_slot: 'b', bootcount: '1', bootlimit: '3', boot_good: 'a' });
    expect(r.current).toBe(0);
    expect(readBootEnv(dev).vars).toMatchObject({ ab_seq: '3', boot_slot: 'b' });
    const torn = dev.read(0, 1);
    torn[20] ^= 0x01;
    dev.write(0, torn);
    const after = readBootEnv(dev);
    expect(after.refused).toEqual(['E_BOOTENV_CRC', '']);
    expect(after.vars).toMatchObject({ ab_seq: '2', boot_slot: 'a' });
    // Right CRC, wrong content: refused too.
    const odd = encodeBootEnvBlock({ ab_seq: '9', boot_slot: 'c', bootcount: '0', bootlimit: '3' }, BOOTENV_VARS);
    expect(decodeBootEnvBlock(odd)).toEqual({ refused: 'E_BOOTENV_FORMAT' });
  });

  it('the boot stage confirms the boot slot, and writes nothing on a disk without the block', () => {
    const dev = envDevice();
    provisionBootEnv(dev, 'a', 2);
    const r = readBootEnv(dev);
    writeBootEnv(dev, r, { boot_slot: 'b', bootcount: '2', bootlimit: '2', boot_good: 'a' }); // U-Boot fell back to b
    const lines: string[] = [];
    confirmBootSlot(dev, (l) => lines.push(l));
    expect(lines).toEqual(['boot[BOOT-CONFIRM] slot=b tries=2']);
    expect(readBootEnv(dev).vars).toEqual({ ab_seq: '4', boot_good: 'b', boot_slot: 'b', bootcount: '0', bootlimit: '2' });
    const writes = dev.sectorWrites;
    confirmBootSlot(dev, (l) => lines.push(l)); // already confirmed: no write
    expect(dev.sectorWrites).toBe(writes);

    const blank = envDevice();
    confirmBootSlot(blank, (l) => lines.push(l));
    expect(blank.sectorWrites).toBe(0);
  });
});

const available = existsSync(board.qemu!.firmware!) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const BOOT_TIMEOUT = 900_000; // several TCG boots on a loaded 2-core machine; a liveness bound only

/** The FIT header's totalsize (big-endian, offset 4) of the boot image at `offset` in a disk. */
function fitHeaderTotalsize(disk: string, offset: number): number {
  const fd = openSync(disk, 'r');
  try {
    const b = Buffer.alloc(8);
    readSync(fd, b, 0, 8, offset);
    expect(b.readUInt32BE(0)).toBe(0xd00dfeed);
    return b.readUInt32BE(4);
  } finally {
    closeSync(fd);
  }
}

/** The block counts of U-Boot's virtio reads that start at a slot's first block, in order. */
function readCounts(console: string, slotOffset: number): number[] {
  return [...console.matchAll(/virtio read: device 0 block # (\d+), count (\d+)/g)].filter((m) => Number(m[1]) === slotOffset / 512).map((m) => Number(m[2]));
}

function readEnv(disk: string, ab: AbLayout) {
  const dev = new FileBlockDevice(disk, 512, false);
  try {
    return readBootEnv(new PartitionDevice(dev, ab.bootenv.offset, ab.bootenv.size)).vars;
  } finally {
    dev.close();
  }
}

describe.skipIf(!available)('A/B boot slots through U-Boot in QEMU', () => {
  let work: string;
  let keys: string;
  const ab = abLayout(board)!;
  const ok = (r: { code: number; stderr: string; stdout: string }) => expect(r.code, r.stderr + r.stdout).toBe(0);

  beforeAll(async () => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'boot-ab-'));
    keys = join(work, 'keys');
    ok(signet(['keys', 'init', '--dir', keys]));
    ok(signet(['build', '--project', join(ROOT, 'examples', 'hello'), '--version', '1.2.0', '--security-counter', '3', '--keys', keys, '--out', join(work, 'app.simg'), '--no-typecheck']));
    // The happy path's disk through the CLI: the same good boot image in both slots.
    ok(signet(['disk', join(work, 'app.simg'), '--board', board.id, '--keys', keys, '--boot-ab', '--app-test-mode', '--out', join(work, 'good.img'), '--key-dtb', join(work, 'pub.dtb')], { timeout: 600_000 }));
    // A boot image signed like any other whose kernel finds no init: panic, then (panic=-1) reset.
    const bad = await buildBootImage({ board: { ...board, kernel: { ...board.kernel, cmdline: 'console=ttyAMA0 panic=-1 rdinit=/signet-none' } }, keysDir: keys, testMode: true });
    await buildDisk({ board, appImage: join(work, 'app.simg'), keysDir: keys, out: join(work, 'fallback.img'), testMode: true, bootAb: { fitA: bad.fit, bootlimit: 2 } });
  }, 1_200_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('lays out boot_a, boot_b and bootenv around the board\'s partitions', () => {
    const fd = openSync(join(work, 'good.img'), 'r');
    try {
      const gpt = decodeGpt((off, len) => {
        const b = new Uint8Array(len);
        readSync(fd, b, 0, len, off);
        return b;
      }, 512);
      expect(gpt.partitions.map((p) => `${p.name}@${p.offset}+${p.size}`)).toEqual([
        `boot_a@${ab.boot_a.offset}+${ab.boot_a.size}`,
        ...board.flash.partitions.filter((p) => p.name !== 'boot').map((p) => `${p.name}@${p.offset}+${p.size}`),
        `boot_b@${ab.boot_b.offset}+${ab.boot_b.size}`,
        `bootenv@${ab.bootenv.offset}+${ab.bootenv.size}`,
      ]);
    } finally {
      closeSync(fd);
    }
    expect(readEnv(join(work, 'good.img'), ab)).toEqual({ ab_seq: '2', boot_good: 'a', boot_slot: 'a', bootcount: '0', bootlimit: '3' });
  });

  it('refuses a boot_b FIT that U-Boot would refuse before writing anything, and --boot-b without --boot-ab', () => {
    const disk = readFileSync(join(work, 'good.img'));
    const fit = Buffer.from(disk.subarray(ab.boot_a.offset, ab.boot_a.offset + disk.readUInt32BE(ab.boot_a.offset + 4)));
    fit[fit.length >> 1] ^= 0x01; // inside the kernel's data: its hash no longer matches
    writeFileSync(join(work, 'tampered.itb'), fit);
    const out = join(work, 'refused.img');
    const args = [join(work, 'app.simg'), '--board', board.id, '--keys', keys, '--boot-b', join(work, 'tampered.itb'), '--out', out];
    expectOneLineError(signet(['disk', ...args, '--boot-ab'], { timeout: 600_000 }), 'E_FIT_HASH_MISMATCH');
    expectOneLineError(signet(['disk', ...args]), 'E_USAGE');
    expect(existsSync(out)).toBe(false);
  }, 660_000);

  it.concurrent('a kernel that panics in boot_a: U-Boot tries it bootlimit times, then boot_b boots and is confirmed', async () => {
    const out = await bootAbDisk(board, ab, join(work, 'fallback.img'), new Uint8Array(readFileSync(join(work, 'pub.dtb'))), BOOT_TIMEOUT);
    const picks = [...out.matchAll(/signet-ab: boot_slot=([ab]) bootcount=(\w+)/g)].map((m) => `${m[1]}${m[2]}`);
    expect(picks).toEqual(['a1', 'a2', 'b1']);
    expect(out.match(/Kernel panic/g)?.length).toBe(2);
    expect(out).toContain('boot[BOOT-CONFIRM] slot=b tries=1');
    expect(out).toContain('hello from signet');
    expect(readEnv(join(work, 'fallback.img'), ab)).toMatchObject({ boot_slot: 'b', bootcount: '0', boot_good: 'b' });
  }, BOOT_TIMEOUT + 60_000);

  it.concurrent('a good boot_a boots once and its boot stage puts bootcount back to 0', async () => {
    const fitBlocks = Math.ceil(fitHeaderTotalsize(join(work, 'good.img'), ab.boot_a.offset) / 512);
    const out = await bootAbDisk(board, ab, join(work, 'good.img'), new Uint8Array(readFileSync(join(work, 'pub.dtb'))), BOOT_TIMEOUT);
    expect([...out.matchAll(/signet-ab: boot_slot=([ab]) bootcount=(\w+)/g)].map((m) => `${m[1]}${m[2]}`)).toEqual(['a1']);
    // U-Boot read the FIT's header block, then the FIT's own blocks, not the whole slot.
    expect(readCounts(out, ab.boot_a.offset)).toEqual([1, fitBlocks]);
    expect(fitBlocks).toBeLessThan(ab.boot_a.size / 512);
    expect(out).toContain('boot[BOOT-CONFIRM] slot=a tries=1');
    expect(readEnv(join(work, 'good.img'), ab)).toEqual({ ab_seq: '4', boot_good: 'a', boot_slot: 'a', bootcount: '0', bootlimit: '3' });
  }, BOOT_TIMEOUT + 60_000);

  it.concurrent("a FIT header claiming more than the slot: U-Boot reads no further than the slot's end", async () => {
    const liar = join(work, 'liar.img');
    copyFileSync(join(work, 'good.img'), liar);
    const fd = openSync(liar, 'r+');
    try {
      writeSync(fd, new Uint8Array([0x7f, 0xff, 0xff, 0xff]), 0, 4, ab.boot_a.offset + 4); // totalsize: 2 GiB
    } finally {
      closeSync(fd);
    }
    const out = await bootAbDisk(board, ab, liar, new Uint8Array(readFileSync(join(work, 'pub.dtb'))), BOOT_TIMEOUT);
    const counts = readCounts(out, ab.boot_a.offset);
    expect(counts.length).toBeGreaterThan(0);
    for (let i = 0; i < counts.length; i += 2) expect(counts.slice(i, i + 2)).toEqual([1, ab.boot_a.size / 512]);
    expect(out).not.toMatch(/blocks read: ERROR|"Synchronous Abort"/);
    expect(out).toContain('hello from signet'); // whichever slot bootm took, the device came up
  }, BOOT_TIMEOUT + 60_000);
});
