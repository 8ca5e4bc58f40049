/**
 * How a disk image is cut for the trip over a serial line, which moves ~11 KiB/s at 115200 baud:
 *
 *  - The image is scanned in pages (64 KiB, a multiple of the block size). A page holding one
 *    repeated byte (erased or zeroed space: most of a disk) is a **fill** page: the board makes
 *    it with `mw`, nothing crosses the line. Other pages are **data**.
 *  - Runs of pages of the same kind become chunks: data chunks up to `chunkBytes` (1 MiB: the
 *    unit that is resent when a check fails), fill chunks up to half the RAM window.
 *  - The board's RAM window (board.json serial.loadAddress + ramWindow) starts with a 64 KiB
 *    digest area (`digestAddr`: the FIT whose SHA-256 hash nodes let U-Boot check a range, see
 *    digest-fit.ts); the rest is split in two halves: the chunk is staged in the first
 *    (`writeAddr`) and read back from storage into the second (`readAddr`). A compressed chunk is
 *    received into the second half and unzipped into the first.
 *  - Each data chunk is also gzipped; the compressed form is sent when the board has `unzip` and
 *    it saves at least 10 %.
 *  - Verification ranges group neighbouring chunks up to half the window, for the final pass that
 *    re-reads the whole flash after the last write.
 *
 * Every chunk and range carries the CRC-32 that U-Boot's `crc32` must print for it, and its
 * SHA-256. CRC-32 alone cannot decide that storage holds a range: a block that ends in its own
 * CRC-32 (each boot-state copy does) leaves the same CRC residue whatever it holds, so two
 * different states give one CRC over any range that contains them whole.
 */
import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { crc32 as portableCrc32 } from '../util/crc32';
import { FlashError } from './flasher-errors';

export const PAGE_BYTES = 64 * 1024;
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
/** RAM kept at the start of the window for the digest FIT (digest-fit.ts). */
export const DIGEST_AREA_BYTES = 64 * 1024;
/** The compressed form must save at least this share to be worth an extra `unzip`. */
const MIN_GZIP_SAVING = 0.1;
/** Pages read from the file at once while scanning. */
const SCAN_PAGES = 64;

/** zlib's CRC-32 (Node ≥ 20.15) is ~10× faster than the portable one and gives the same values. */
const nativeCrc32 = (zlib as unknown as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
export const fastCrc32: (data: Uint8Array, value?: number) => number = nativeCrc32 ?? ((d, v) => portableCrc32(d, v));

export interface FlashWindow {
  /** serial.loadAddress */
  loadAddress: bigint;
  /** serial.ramWindow: bytes of RAM from loadAddress the flasher may use. */
  ramWindow: number;
  /** flash.blockSize: the unit of the storage commands. */
  blockSize: number;
  /**
   * NOR flash (board serial.erase): flash.eraseBlockSize. Chunks are then whole erase blocks,
   * so erasing one never touches a neighbour's bytes (a write is erase, then program).
   */
  eraseBlockSize?: number;
  /** NOR flash: flash.size, the bank every chunk must lie in. */
  bankBytes?: number;
}

export interface FlashChunk {
  index: number;
  offset: number;
  bytes: number;
  kind: 'data' | 'fill';
  /** The byte a fill chunk repeats. */
  fill?: number;
  /** CRC-32 of the chunk's bytes, as U-Boot's `crc32` computes it. */
  crc: number;
  /** SHA-256 of the chunk's bytes. */
  sha256: Uint8Array;
  /** gzip of a data chunk, kept when it saves enough. */
  gz?: Uint8Array;
  /**
   * NOR flash: the parts of the chunk (offsets relative to it, PROGRAM_UNIT-aligned) that are not
   * erased bytes (0xff) and must be programmed after the erase; the rest the erase already made.
   */
  programRuns?: { offset: number; bytes: number }[];
}

export interface VerifyRange {
  offset: number;
  bytes: number;
  crc: number;
  sha256: Uint8Array;
  /** Indexes of the chunks it covers. */
  chunks: number[];
}

export interface FlashPlan {
  diskBytes: number;
  blockSize: number;
  pageBytes: number;
  /** Half the RAM window: the largest chunk and range. */
  windowBytes: number;
  writeAddr: bigint;
  readAddr: bigint;
  /** Where the digest FIT goes (DIGEST_AREA_BYTES), below writeAddr; undefined when the window is too small for it. */
  digestAddr: bigint | undefined;
  chunks: FlashChunk[];
  ranges: VerifyRange[];
  dataBytes: number;
  fillBytes: number;
  /** What the data chunks cost on the line if sent compressed where that helps. */
  gzBytes: number;
}

export interface PlanOptions {
  /** Largest data chunk (default 1 MiB); rounded to pages and bounded by half the RAM window. */
  chunkBytes?: number;
  /** Compute gzip forms (default true). */
  compress?: boolean;
}

export interface PlanSource {
  readonly size: number;
  read(offset: number, length: number): Uint8Array;
}

const roundDown = (n: number, unit: number): number => Math.floor(n / unit) * unit;

/** NOR: the granularity at which a chunk's erased (0xff) parts are left out of programming. */
export const PROGRAM_UNIT = 4096;

/** NOR: the runs of `bytes` (PROGRAM_UNIT pieces) that hold anything but 0xff. */
export function programRuns(bytes: Uint8Array): { offset: number; bytes: number }[] {
  const runs: { offset: number; bytes: number }[] = [];
  for (let at = 0; at < bytes.length; at += PROGRAM_UNIT) {
    const end = Math.min(at + PROGRAM_UNIT, bytes.length);
    let erased = true;
    for (let i = at; i < end; i++) {
      if (bytes[i] !== 0xff) {
        erased = false;
        break;
      }
    }
    if (erased) continue;
    const last = runs[runs.length - 1];
    if (last && last.offset + last.bytes === at) last.bytes += end - at;
    else runs.push({ offset: at, bytes: end - at });
  }
  return runs;
}

/**
 * NOR flash: every chunk must be whole erase blocks inside the bank, or erasing it would wipe
 * bytes outside it (a neighbour chunk already written, or past the bank). Checked on the plan
 * before the port is opened.
 */
export function checkErasePlan(plan: FlashPlan, eraseBlockSize: number, bankBytes: number): void {
  const fail = (what: string): never => {
    throw new FlashError('E_FLASH_ERASE_LAYOUT', `the flash plan ${what}`, 'make flash.size a multiple of flash.eraseBlockSize and serial.ramWindow at least two erase blocks (plus 64 KiB) in the board file');
  };
  if (plan.diskBytes > bankBytes) fail(`covers ${plan.diskBytes} bytes, the NOR bank holds ${bankBytes}`);
  for (const c of plan.chunks) {
    if (c.offset % eraseBlockSize !== 0 || c.bytes % eraseBlockSize !== 0) fail(`has a chunk at ${c.offset} of ${c.bytes} bytes, not whole ${eraseBlockSize}-byte erase blocks`);
    if (c.offset + c.bytes > bankBytes) fail(`has a chunk at ${c.offset} of ${c.bytes} bytes, past the ${bankBytes}-byte NOR bank`);
  }
}

export function planFlash(source: PlanSource, window: FlashWindow, options: PlanOptions = {}): FlashPlan {
  const bs = window.blockSize;
  if (source.size % bs !== 0) {
    throw new FlashError('E_FLASH_BOARD', `the disk is ${source.size} bytes, not a whole number of ${bs}-byte blocks`, 'make flash.size a multiple of flash.blockSize in the board file');
  }
  // The digest area is kept only when the halves still hold a page each without it.
  const erase = window.eraseBlockSize;
  if (erase !== undefined && (erase % bs !== 0 || source.size % erase !== 0)) {
    throw new FlashError('E_FLASH_ERASE_LAYOUT', `the disk is ${source.size} bytes, not whole ${erase}-byte erase blocks of ${bs}-byte blocks`, 'make flash.size a multiple of flash.eraseBlockSize, and that a multiple of flash.blockSize, in the board file');
  }
  // On NOR a page is an erase block: a chunk never shares one with another.
  const pageUnit0 = erase !== undefined ? Math.max(erase, Math.ceil(PAGE_BYTES / erase) * erase) : Math.ceil(PAGE_BYTES / bs) * bs;
  const reserve = window.ramWindow - roundDown(DIGEST_AREA_BYTES, bs) >= 2 * pageUnit0 ? Math.ceil(DIGEST_AREA_BYTES / bs) * bs : 0;
  let half = roundDown(Math.floor((window.ramWindow - reserve) / 2), bs);
  if (half < bs) {
    throw new FlashError('E_FLASH_BOARD', `a RAM window of ${window.ramWindow} bytes cannot hold two ${bs}-byte blocks`, 'raise serial.ramWindow in the board file');
  }
  const pageUnit = pageUnit0;
  if (erase !== undefined && half < pageUnit) {
    throw new FlashError('E_FLASH_ERASE_LAYOUT', `a RAM window of ${window.ramWindow} bytes cannot stage one ${erase}-byte erase block and read it back`, 'raise serial.ramWindow in the board file to at least two erase blocks plus 64 KiB');
  }
  if (half >= pageUnit) half = roundDown(half, pageUnit);
  const page = Math.min(pageUnit, half);
  const dataMax = Math.max(page, Math.min(roundDown(options.chunkBytes ?? DEFAULT_CHUNK_BYTES, page), roundDown(half, page)));
  const fillMax = roundDown(half, page);
  const compress = options.compress !== false;

  const chunks: FlashChunk[] = [];
  const ranges: VerifyRange[] = [];
  let range: VerifyRange | undefined;
  let rangeHash = createHash('sha256');
  let open: { kind: 'data' | 'fill'; fill?: number; offset: number; bytes: number; pages: Uint8Array[] } | undefined;
  const fillPages = new Map<number, Uint8Array>();
  const fillPage = (b: number): Uint8Array => {
    let p = fillPages.get(b);
    if (!p) fillPages.set(b, (p = new Uint8Array(page).fill(b)));
    return p;
  };

  const close = (): void => {
    if (!open) return;
    const c: FlashChunk = { index: chunks.length, offset: open.offset, bytes: open.bytes, kind: open.kind, crc: 0, sha256: new Uint8Array(0) };
    let rangeCrc = range && range.bytes + c.bytes <= half ? range.crc : undefined;
    if (rangeCrc === undefined) {
      if (range) range.sha256 = new Uint8Array(rangeHash.digest());
      range = { offset: c.offset, bytes: 0, crc: 0, sha256: new Uint8Array(0), chunks: [] };
      rangeHash = createHash('sha256');
      ranges.push(range);
      rangeCrc = 0;
    }
    const chunkHash = createHash('sha256');
    if (open.kind === 'fill') {
      c.fill = open.fill!;
      for (let done = 0; done < c.bytes; done += page) {
        const part = fillPage(c.fill).subarray(0, Math.min(page, c.bytes - done));
        c.crc = fastCrc32(part, c.crc);
        rangeCrc = fastCrc32(part, rangeCrc);
        chunkHash.update(part);
        rangeHash.update(part);
      }
    } else {
      const bytes = open.pages.length === 1 ? open.pages[0]! : Buffer.concat(open.pages);
      if (erase !== undefined) c.programRuns = programRuns(bytes);
      c.crc = fastCrc32(bytes);
      rangeCrc = fastCrc32(bytes, rangeCrc);
      chunkHash.update(bytes);
      rangeHash.update(bytes);
      if (compress) {
        const gz = zlib.gzipSync(bytes, { level: 6 }); // level 9 saves <0.1 % on kernels and takes 3× longer
        if (gz.length <= c.bytes * (1 - MIN_GZIP_SAVING)) c.gz = new Uint8Array(gz.buffer, gz.byteOffset, gz.length);
      }
    }
    c.sha256 = new Uint8Array(chunkHash.digest());
    range!.crc = rangeCrc;
    range!.bytes += c.bytes;
    range!.chunks.push(c.index);
    chunks.push(c);
    open = undefined;
  };

  for (let at = 0; at < source.size; ) {
    const block = source.read(at, Math.min(page * SCAN_PAGES, source.size - at));
    for (let p = 0; p < block.length; p += page) {
      const bytes = block.subarray(p, Math.min(p + page, block.length));
      const b = bytes[0]!;
      const uniform = Buffer.compare(bytes, fillPage(b).subarray(0, bytes.length)) === 0;
      const kind = uniform ? 'fill' : 'data';
      const max = uniform ? fillMax : dataMax;
      if (!open || open.kind !== kind || (uniform && open.fill !== b) || open.bytes + bytes.length > max) {
        close();
        open = { kind, offset: at + p, bytes: 0, pages: [], ...(uniform ? { fill: b } : {}) };
      }
      open.bytes += bytes.length;
      if (!uniform) open.pages.push(bytes);
    }
    at += block.length;
  }
  close();
  if (range) range.sha256 = new Uint8Array(rangeHash.digest());

  const data = chunks.filter((c) => c.kind === 'data');
  const plan: FlashPlan = {
    diskBytes: source.size,
    blockSize: bs,
    pageBytes: page,
    windowBytes: half,
    writeAddr: window.loadAddress + BigInt(reserve),
    readAddr: window.loadAddress + BigInt(reserve + half),
    digestAddr: reserve > 0 ? window.loadAddress : undefined,
    chunks,
    ranges,
    dataBytes: data.reduce((n, c) => n + c.bytes, 0),
    fillBytes: chunks.filter((c) => c.kind === 'fill').reduce((n, c) => n + c.bytes, 0),
    gzBytes: data.reduce((n, c) => n + (c.gz ? c.gz.length : c.bytes), 0),
  };
  if (erase !== undefined) checkErasePlan(plan, erase, window.bankBytes ?? source.size);
  return plan;
}
