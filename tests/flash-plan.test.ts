/**
 * The parts of `signet flash` that need no board: the pre-flight check of a disk image (real
 * keys, real signatures, a real GPT and FIT on a small board layout), how a disk is cut into
 * chunks, the commands built from board.json templates, and the parsing of U-Boot's crc32.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadBoard, type Board } from '../sdk/board';
import { encodeGpt } from '../sdk/disk/gpt';
import { decodeFdt, encodeFdt, fdtNode, findNode, getProp, readU32 } from '../sdk/fit/fdt';
import { buildFit } from '../sdk/fit/fit';
import { ForgeRsaSigner } from '../sdk/fit/rsa';
import { checkDisk, DiskSource, type FlashTrust } from '../sdk/flash/disk-check';
import { buildDigestFit, digestVerdict } from '../sdk/flash/digest-fit';
import { cmpVerdict, parseCrc32Output, storageCommand } from '../sdk/flash/flasher';
import { FlashError } from '../sdk/flash/flasher-errors';
import { planFlash, type PlanSource } from '../sdk/flash/flasher-plan';
import { formatDuration, jsonReporter, plainReporter, summaryLine, ttyReporter } from '../sdk/flash/progress';
import type { FlashEvent, FlashSummary } from '../sdk/flash/flasher';
import { crc32 } from '../sdk/util/crc32';
import { makeImage, makeKeySet, type TestKeySet } from './helpers/fixtures';

const MiB = 1024 * 1024;

/** qemu-virt-arm64 with a 4 MiB flash: same addresses and commands, small partitions. */
function tinyBoard(): Board {
  const b = loadBoard('qemu-virt-arm64');
  return {
    ...b,
    flash: {
      ...b.flash,
      size: 4 * MiB,
      partitions: [
        { name: 'boot', offset: 64 * 1024, size: MiB },
        { name: 'slot_a', offset: MiB + 64 * 1024, size: MiB },
        { name: 'slot_b', offset: 2 * MiB + 64 * 1024, size: MiB },
        { name: 'state', offset: 3 * MiB + 64 * 1024, size: 64 * 1024 },
      ],
    },
  };
}

const part = (b: Board, name: string) => b.flash.partitions.find((p) => p.name === name)!;

function fitFor(board: Board, signer: ForgeRsaSigner, overrides: { arch?: 'arm64' | 'arm'; kernelLoad?: string } = {}): Uint8Array {
  const a = board.loadAddresses;
  return buildFit({
    description: `test boot image for ${board.id}`,
    arch: overrides.arch ?? 'arm64',
    timestamp: 1_700_000_000,
    kernel: { data: new Uint8Array(3000).fill(0x11), loadAddress: BigInt(overrides.kernelLoad ?? a.kernel), entryAddress: BigInt(overrides.kernelLoad ?? a.kernel) },
    ramdisk: { data: new Uint8Array(2000).fill(0x22), loadAddress: BigInt(a.ramdisk) },
    fdt: { data: encodeFdt({ root: fdtNode(''), reservations: [], bootCpuidPhys: 0 }), loadAddress: BigInt(a.fdt) },
    keyName: 'fit',
    signer,
  });
}

function diskBytes(board: Board, fit: Uint8Array, slotA?: Uint8Array, slotB?: Uint8Array): Uint8Array {
  const disk = new Uint8Array(board.flash.size);
  const gpt = encodeGpt({ diskBytes: board.flash.size, sectorSize: 512, partitions: board.flash.partitions, seed: new Uint8Array(32) });
  disk.set(gpt.primary.bytes, gpt.primary.offset);
  disk.set(gpt.backup.bytes, gpt.backup.offset);
  disk.set(fit, part(board, 'boot').offset);
  if (slotA) disk.set(slotA, part(board, 'slot_a').offset);
  disk.fill(0xff, part(board, 'slot_b').offset, part(board, 'slot_b').offset + 512);
  if (slotB) disk.set(slotB, part(board, 'slot_b').offset);
  disk.fill(0xff, part(board, 'state').offset, part(board, 'state').offset + part(board, 'state').size);
  return disk;
}

describe('pre-flight check of a disk image', () => {
  const board = tinyBoard();
  let dir: string;
  let ks: TestKeySet;
  let other: TestKeySet;
  let signer: ForgeRsaSigner;
  let otherSigner: ForgeRsaSigner;
  let trust: FlashTrust;
  let app: Uint8Array;
  let n = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'signet-diskcheck-'));
    ks = await makeKeySet();
    other = await makeKeySet();
    signer = ForgeRsaSigner.generate();
    otherSigner = ForgeRsaSigner.generate();
    writeFileSync(join(dir, 'root.json'), ks.rootBytes);
    trust = { rootPath: join(dir, 'root.json'), fitKeys: [{ keyName: 'fit', publicKey: signer.publicKey() }], describe: 'test' };
    app = await makeImage({ signers: [ks.targets[0]!.signer] });
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const write = (bytes: Uint8Array): string => {
    const p = join(dir, `disk-${n++}.img`);
    writeFileSync(p, bytes);
    return p;
  };
  const refusal = (path: string): FlashError => {
    try {
      checkDisk(path, board, trust).source.close();
    } catch (e) {
      expect(e).toBeInstanceOf(FlashError);
      expect((e as FlashError).code).toBe('E_FLASH_REFUSED');
      expect((e as FlashError).line()).toMatch(/^error\[E_FLASH_REFUSED\]: .* — nothing was sent to the board/);
      return e as FlashError;
    }
    throw new Error('expected a refusal');
  };

  test('a good disk verifies: boot image with the key, slot A for the board, slot B empty', () => {
    const checked = checkDisk(write(diskBytes(board, fitFor(board, signer), app)), board, trust);
    try {
      expect(checked.bootImage).toMatchObject({ offset: part(board, 'boot').offset, keyNames: ['fit'], configuration: 'conf-1' });
      expect(checked.slotA.manifest).toMatchObject({ board: board.id, version: '1.2.0', securityCounter: 3 });
      expect(checked.slotB).toBeUndefined();
    } finally {
      checked.source.close();
    }
  });

  test('slot B holding a valid fallback image is verified too', async () => {
    const older = await makeImage({ version: '1.1.0', securityCounter: 2, signers: [ks.targets[0]!.signer] });
    const checked = checkDisk(write(diskBytes(board, fitFor(board, signer), app, older)), board, trust);
    checked.source.close();
    expect(checked.slotB?.manifest.version).toBe('1.1.0');
  });

  test('an app image signed by a key the root does not trust is refused', async () => {
    const foreign = await makeImage({ signers: [other.targets[0]!.signer] });
    expect(refusal(write(diskBytes(board, fitFor(board, signer), foreign))).reason).toMatch(/^E_(UNKNOWN_KEY|THRESHOLD)$/);
  });

  test('an app image built for another board is refused', async () => {
    const xen = await makeImage({ board: 'xen-arm32', signers: [ks.targets[0]!.signer] });
    const e = refusal(write(diskBytes(board, fitFor(board, signer), xen)));
    expect(e.reason).toBe('E_BOARD');
    expect(e.message).toContain('slot A');
  });

  test('a tampered app image, an empty slot A and a bad slot B are refused', async () => {
    const tampered = app.slice();
    tampered[tampered.length - 200]! ^= 1;
    expect(refusal(write(diskBytes(board, fitFor(board, signer), tampered))).reason).toMatch(/^E_(DIGEST|SIGNATURE)$/);
    expect(refusal(write(diskBytes(board, fitFor(board, signer)))).reason).toBe('E_SLOT_EMPTY');
    const foreignB = await makeImage({ signers: [other.targets[0]!.signer] });
    expect(refusal(write(diskBytes(board, fitFor(board, signer), app, foreignB))).message).toContain('slot B');
  });

  test('a boot image signed by another key, or built for another board, is refused', () => {
    expect(refusal(write(diskBytes(board, fitFor(board, otherSigner), app))).reason).toMatch(/^E_FIT_/);
    expect(refusal(write(diskBytes(board, fitFor(board, signer, { arch: 'arm' }), app))).reason).toBe('E_FIT_BOARD');
    expect(refusal(write(diskBytes(board, fitFor(board, signer, { kernelLoad: '0x42000000' }), app))).reason).toBe('E_FIT_BOARD');
    const fit = fitFor(board, signer);
    const flipped = fit.slice();
    flipped[Buffer.from(fit).indexOf(Buffer.from(new Uint8Array(64).fill(0x11))) + 7]! ^= 1;
    expect(refusal(write(diskBytes(board, flipped, app))).reason).toBe('E_FIT_HASH_MISMATCH');
  });

  test('a file that is not this board\'s disk is refused', () => {
    expect(refusal(write(new Uint8Array(board.flash.size))).reason).toBe('E_DISK_NOT_A_DISK'); // no GPT
    expect(refusal(write(new Uint8Array(MiB))).reason).toBe('E_DISK_NOT_A_DISK'); // wrong size
    // A GPT whose slot A is not where the board file says.
    const moved = { ...board, flash: { ...board.flash, partitions: board.flash.partitions.map((p) => (p.name === 'slot_a' ? { ...p, size: p.size / 2 } : p)) } };
    expect(refusal(write(diskBytes(moved, fitFor(board, signer), app))).reason).toBe('E_DISK_NOT_A_DISK');
  });

  test('bytes that change after the check are not handed to the flasher', () => {
    const path = write(diskBytes(board, fitFor(board, signer), app));
    const checked = checkDisk(path, board, trust);
    try {
      const a = part(board, 'slot_a').offset;
      expect(checked.source.read(a, 4096).subarray(0, 4)).toEqual(app.subarray(0, 4));
      const changed = diskBytes(board, fitFor(board, signer), app);
      changed[a + 100]! ^= 1;
      writeFileSync(path, changed);
      expect(() => checked.source.read(a, 4096)).toThrow(expect.objectContaining({ code: 'E_FLASH_DISK_CHANGED' }));
      expect(checked.source.read(0, 4096)).toBeInstanceOf(Uint8Array); // outside what was verified: plain read
    } finally {
      checked.source.close();
    }
  });
});

describe('cutting a disk into chunks', () => {
  const memory = (bytes: Uint8Array): PlanSource => ({ size: bytes.length, read: (o, l) => bytes.slice(o, o + l) });
  const window = { loadAddress: 0x50000000n, ramWindow: 8 * MiB, blockSize: 512 };

  function sample(): Uint8Array {
    const d = new Uint8Array(12 * MiB);
    for (let i = 0; i < 100_000; i++) d[i] = (i * 7919) >>> 3; // data at the start
    d.fill(0xff, 2 * MiB, 3 * MiB); // erased region
    d.set(randomBytes(3 * MiB), 5 * MiB); // 3 MiB that do not compress
    d[11 * MiB + 17] = 1; // a lone byte in a page
    return d;
  }

  test('chunks tile the disk; fill chunks repeat one byte; every CRC is U-Boot\'s', () => {
    const d = sample();
    const plan = planFlash(memory(d), window);
    // The digest FIT's 64 KiB first, then the staging and read-back halves.
    expect(plan.digestAddr).toBe(0x50000000n);
    expect(plan.windowBytes).toBe(4 * MiB - 64 * 1024);
    expect(plan.writeAddr).toBe(0x50000000n + 65536n);
    expect(plan.readAddr).toBe(plan.writeAddr + BigInt(plan.windowBytes));
    expect(plan.readAddr + BigInt(plan.windowBytes)).toBeLessThanOrEqual(0x50000000n + BigInt(8 * MiB));
    let at = 0;
    for (const c of plan.chunks) {
      expect(c.offset).toBe(at);
      expect(c.offset % 512 + c.bytes % 512).toBe(0);
      const bytes = d.subarray(c.offset, c.offset + c.bytes);
      expect(c.crc).toBe(crc32(bytes));
      expect(Buffer.from(c.sha256).toString('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
      if (c.kind === 'fill') {
        expect(bytes.every((b) => b === c.fill)).toBe(true);
        expect(c.bytes).toBeLessThanOrEqual(plan.windowBytes);
      } else {
        expect(c.bytes).toBeLessThanOrEqual(MiB);
        if (c.gz) expect(Buffer.compare(gunzipSync(c.gz), bytes)).toBe(0);
      }
      at += c.bytes;
    }
    expect(at).toBe(d.length);
    expect(plan.dataBytes + plan.fillBytes).toBe(d.length);
    // The erased MiB and the zeros are made on the board; the random 3 MiB goes uncompressed.
    expect(plan.chunks.some((c) => c.kind === 'fill' && c.fill === 0xff && c.bytes === MiB)).toBe(true);
    expect(plan.chunks.filter((c) => c.kind === 'data' && c.offset >= 5 * MiB && c.offset < 8 * MiB).every((c) => !c.gz)).toBe(true);
    expect(plan.chunks.find((c) => c.offset === 0)!.gz).toBeDefined();
    expect(plan.dataBytes).toBe(2 * 64 * 1024 + 3 * MiB + 64 * 1024);
  });

  test('verification ranges cover the disk in windows with the CRC of their bytes', () => {
    const d = sample();
    const plan = planFlash(memory(d), window);
    let at = 0;
    for (const r of plan.ranges) {
      expect(r.offset).toBe(at);
      expect(r.bytes).toBeLessThanOrEqual(plan.windowBytes);
      expect(r.crc).toBe(crc32(d.subarray(r.offset, r.offset + r.bytes)));
      expect(Buffer.from(r.sha256).toString('hex')).toBe(createHash('sha256').update(d.subarray(r.offset, r.offset + r.bytes)).digest('hex'));
      expect(r.chunks.reduce((n, i) => n + plan.chunks[i]!.bytes, 0)).toBe(r.bytes);
      at += r.bytes;
    }
    expect(at).toBe(d.length);
  });

  test('chunk size follows --chunk-size and the RAM window; a window too small is E_FLASH_BOARD', () => {
    const d = sample();
    expect(Math.max(...planFlash(memory(d), window, { chunkBytes: 256 * 1024 }).chunks.filter((c) => c.kind === 'data').map((c) => c.bytes))).toBe(256 * 1024);
    const small = planFlash(memory(d), { ...window, ramWindow: 256 * 1024 });
    expect(Math.max(...small.chunks.map((c) => c.bytes))).toBe(64 * 1024);
    expect(small.digestAddr).toBe(0x50000000n);
    // Too small for the digest area as well as a page each way: no digest area, all for chunks.
    const tiny = planFlash(memory(d), { ...window, ramWindow: 128 * 1024 });
    expect(tiny.digestAddr).toBeUndefined();
    expect(tiny.writeAddr).toBe(0x50000000n);
    expect(() => planFlash(memory(d), { ...window, ramWindow: 1000 })).toThrow(expect.objectContaining({ code: 'E_FLASH_BOARD' }));
    expect(() => planFlash(memory(new Uint8Array(1000)), window)).toThrow(expect.objectContaining({ code: 'E_FLASH_BOARD' }));
    expect(planFlash(memory(d), window, { compress: false }).chunks.every((c) => !c.gz)).toBe(true);
  });

  test('storage commands come from the board templates, in blocks, in hex', () => {
    const b = loadBoard('qemu-virt-arm64');
    expect(storageCommand(b.serial.write, 0x50000000n, 1048576, 65536, 512)).toBe('virtio write 0x50000000 0x800 0x80');
    expect(storageCommand(b.serial.read, 0x52000000n, 0, 512, 512)).toBe('virtio read 0x52000000 0x0 0x1');
    expect(storageCommand('mmc write {addr} {block} {count}; mmc read {addr} {block} {count}', 1n, 4096, 4096, 4096)).toBe('mmc write 0x1 0x1 0x1; mmc read 0x1 0x1 0x1');
  });

  test('NOR (xen-arm32): chunks are whole erase blocks, erased parts are not programmed, a plan that does not fit is refused', () => {
    const xen = loadBoard('xen-arm32');
    const erase = xen.flash.eraseBlockSize!;
    const nor = { loadAddress: BigInt(xen.serial.loadAddress), ramWindow: xen.serial.ramWindow, blockSize: 512, eraseBlockSize: erase, bankBytes: xen.flash.size };
    const d = new Uint8Array(8 * MiB).fill(0xff);
    d.set(randomBytes(5000), 3 * erase + 100); // data inside one erase block
    d.fill(0, 5 * MiB, 5 * MiB + 4096); // one zero program unit
    const plan = planFlash(memory(d), nor);
    for (const c of plan.chunks) expect(c.offset % erase + c.bytes % erase).toBe(0);
    const data = plan.chunks.filter((c) => c.kind === 'data');
    expect(data.map((c) => [c.offset, c.bytes])).toEqual([[3 * erase, erase], [5 * MiB, erase]]);
    expect(data[0]!.programRuns).toEqual([{ offset: 0, bytes: 8192 }]); // 100..5100: two 4 KiB units
    expect(data[1]!.programRuns).toEqual([{ offset: 0, bytes: 4096 }]);
    // Templates in the bank's memory map: first and last byte, length.
    expect(storageCommand('erase {flash} {last}; cp.b {addr} {flash} {bytes}', 0x50010000n, 3 * erase, erase, 512, 0x04000000n)).toBe('erase 0x40c0000 0x40fffff; cp.b 0x50010000 0x40c0000 0x40000');
    // Refused before anything is sent: not whole erase blocks, larger than the bank, a window too small for one block.
    const refused = (f: () => unknown) => expect(f).toThrow(expect.objectContaining({ code: 'E_FLASH_ERASE_LAYOUT' }));
    refused(() => planFlash(memory(new Uint8Array(8 * MiB + 512)), nor));
    refused(() => planFlash(memory(d), { ...nor, bankBytes: 4 * MiB }));
    refused(() => planFlash(memory(d), { ...nor, ramWindow: erase + 65536 }));
    refused(() => planFlash(memory(d), { ...nor, eraseBlockSize: 3 * 65536 + 512 }));
  });

  test("U-Boot's crc32 line is accepted only for exactly the region asked", () => {
    const line = 'crc32 for 50000000 ... 500fffff ==> c71c0011';
    expect(parseCrc32Output(line, 0x50000000n, 0x100000)).toBe(0xc71c0011);
    expect(parseCrc32Output(line, 0x50000000n, 0x1000)).toBeUndefined();
    expect(parseCrc32Output(line, 0x52000000n, 0x100000)).toBeUndefined();
    expect(parseCrc32Output('crc32 for 50000000 ... 500fffff ==> c71c00', 0x50000000n, 0x100000)).toBeUndefined();
    expect(parseCrc32Output('', 0x50000000n, 1)).toBeUndefined();
  });

  test('DiskSource refuses a file whose size changed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-src-'));
    try {
      writeFileSync(join(dir, 'd.img'), new Uint8Array(1024));
      expect(() => new DiskSource(join(dir, 'd.img'), 2048)).toThrow(expect.objectContaining({ code: 'E_FLASH_DISK_CHANGED' }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('progress and summary', () => {
  const summary: FlashSummary = {
    disk: 'disk.img', board: 'qemu-virt-arm64', port: 'unix:/tmp/b.sock', uboot: 'U-Boot 2023.01',
    diskBytes: 128 * MiB, writtenBytes: 120 * MiB, unchangedBytes: 8 * MiB, chunks: 43, sentBytes: 10 * MiB, wireBytes: 10.1 * MiB,
    retries: 2, retypedLines: 5, mendedLines: 3, elapsedMs: 443_000, transferMs: 400_000, effectiveBytesPerSecond: (128 * MiB) / 443, serialBytesPerSecond: (10 * MiB) / 400,
    env: ['bootcmd'], envMode: 'save', saved: true, reset: true,
  };
  const tick: FlashEvent = { type: 'progress', phase: 'write', doneBytes: 32 * MiB, totalBytes: 128 * MiB, sentBytes: 2 * MiB, sendTotal: 10 * MiB, elapsedMs: 80_000, serialBytesPerSecond: 26_000, etaMs: 322_000 };

  test('the summary line names the throughput', () => {
    const line = summaryLine(summary);
    expect(line).toContain('flashed disk.img to qemu-virt-arm64 on unix:/tmp/b.sock: 128.0 MiB written and verified in 7m23s');
    expect(line).toContain('effective 295.9 KiB/s');
    expect(line).toContain('10.0 MiB sent over serial at 25.6 KiB/s');
    expect(line).toContain('2 chunk retries');
    expect(line).toContain('environment saved (bootcmd), board reset');
    expect(summaryLine({ ...summary, envMode: 'check', saved: false })).toContain('environment already in place (bootcmd), board reset');
    expect(formatDuration(3_725_000)).toBe('1h02m');
  });

  test('a terminal gets a bar redrawn in place with bytes, rate and ETA; milestones above it', () => {
    let screen = '';
    const r = ttyReporter({ write: (t: string) => (screen += t), columns: 120 });
    r.event(tick);
    expect(screen).toMatch(/^\r\x1b\[2Kwrite  █+░+  25%  32\.0 MiB\/128\.0 MiB  sent 2\.0 MiB\/10\.0 MiB  25\.4 KiB\/s  ETA 5m22s$/);
    r.event({ type: 'retry', index: 3, offset: 0x300000, attempt: 1, code: 'E_FLASH_READBACK', message: 'x' });
    expect(screen).toContain('\r\x1b[2Kretry: chunk 3 at 0x300000, attempt 1 failed (E_FLASH_READBACK): x\n');
    r.close();
    expect(screen.endsWith('\r\x1b[2K')).toBe(true);
  });

  test('--json writes one object per line; plain output keeps milestones only', () => {
    const json: string[] = [];
    const plain: string[] = [];
    const j = jsonReporter((l) => json.push(l));
    const p = plainReporter((l) => plain.push(l));
    for (const e of [tick, { type: 'saved' } as FlashEvent, { type: 'done', summary } as FlashEvent]) {
      j.event(e);
      p.event(e);
    }
    expect(json.map((l) => JSON.parse(l).type)).toEqual(['progress', 'saved', 'done']);
    expect(plain).toEqual(['environment saved']);
  });
});

describe('checks the data cannot cancel (finding 25)', () => {
  /** A boot-state-like page: two 64-byte copies at 0 and 32 KiB, each ending in the CRC-32 of its first 60 bytes. */
  function statePage(seq: number): Uint8Array {
    const page = new Uint8Array(64 * 1024);
    for (const at of [0, 32 * 1024]) {
      const copy = page.subarray(at, at + 64);
      copy.set([0x53, 0x42, 0x53, 0x54, 1, 0, 64, 0, seq, 0, 0, 0, 0, 2, 0, 0, seq + 2]);
      new DataView(copy.buffer, copy.byteOffset).setUint32(60, crc32(copy.subarray(0, 60)), true);
    }
    return page;
  }
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

  test('two different pages of self-CRC\'d copies have the same CRC-32 (the residue) and different SHA-256', () => {
    const a = statePage(1);
    const b = statePage(7);
    expect(Buffer.compare(a, b)).not.toBe(0);
    expect(crc32(a)).toBe(crc32(b)); // why a CRC-32 over the page cannot tell them apart
    expect(sha(a)).not.toBe(sha(b));
    const plan = planFlash({ size: a.length, read: (o, l) => a.slice(o, o + l) }, { loadAddress: 0x50000000n, ramWindow: 8 * MiB, blockSize: 512 });
    expect(Buffer.from(plan.chunks[0]!.sha256).toString('hex')).toBe(sha(a));
  });

  test('the digest FIT: one external-data image per target at the read-back address, and a self-test over its own header', () => {
    const t = [{ name: 'c3', bytes: 65536, sha256: new Uint8Array(createHash('sha256').update(statePage(1)).digest()) }];
    const fit = buildDigestFit(t, 0x2010000);
    const root = decodeFdt(fit).root;
    const c3 = findNode(root, '/images/c3')!;
    expect(readU32(getProp(c3, 'data-position')!)).toBe(0x2010000);
    expect(readU32(getProp(c3, 'data-size')!)).toBe(65536);
    expect(Buffer.from(getProp(findNode(root, '/images/c3/hash-1')!, 'value')!).toString('hex')).toBe(sha(statePage(1)));
    const selfTest = findNode(root, '/images/t')!;
    expect(readU32(getProp(selfTest, 'data-position')!)).toBe(0);
    expect(Buffer.from(getProp(findNode(root, '/images/t/hash-1')!, 'value')!).toString('hex')).toBe(sha(fit.subarray(0, 40)));
  });

  test('imxtract and cmp output: only an intact success is a match, only an intact failure a difference', () => {
    const ok = "virtio read: device 0 block # 2048, count 128 ... 128 blocks read: OK\r\n## Copying 'c3' subimage from FIT image at 50000000 ...\r\nsha256+ ";
    expect(digestVerdict(ok, 0)).toBe('match');
    expect(digestVerdict(ok.replace('sha256+', 'sha25#+'), 0)).toBe('unknown');
    expect(digestVerdict(ok, 1)).toBe('unknown');
    const bad = "## Copying 'c3' subimage from FIT image at 50000000 ...\r\nsha256 error!\r\nBad hash value for 'hash-1' hash node in 'c3' image node\r\nBad Data Hash";
    expect(digestVerdict(bad, 1)).toBe('differs');
    expect(digestVerdict(bad.replace('Bad Data', 'Bad Dxta'), 1)).toBe('unknown');
    expect(cmpVerdict('Total of 16384 word(s) were the same', 0, 16384)).toBe('match');
    expect(cmpVerdict('Total of 16383 word(s) were the same', 0, 16384)).toBe('unknown');
    expect(cmpVerdict('word at 0x50010000 (0xa5a5a5a5) != word at 0x52010000 (0x00000000)\r\nTotal of 0 word(s) were the same', 1, 16384)).toBe('differs');
  });
});
