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

export function planFlash(source: PlanSource, window: FlashWindow, options: PlanOptions = {}): FlashPlan {
  const bs = window.blockSize;
  if (source.size % bs !== 0) {
    throw new FlashError('E_FLASH_BOARD', `the disk is ${source.size} bytes, not a whole number of ${bs}-byte blocks`, 'make flash.size a multiple of flash.blockSize in the board file');
  }
  // The digest area is kept only when the halves still hold a page each without it.
  const pageUnit0 = Math.ceil(PAGE_BYTES / bs) * bs;
  const reserve = window.ramWindow - roundDown(DIGEST_AREA_BYTES, bs) >= 2 * pageUnit0 ? Math.ceil(DIGEST_AREA_BYTES / bs) * bs : 0;
  let half = roundDown(Math.floor((window.ramWindow - reserve) / 2), bs);
  if (half < bs) {
    throw new FlashError('E_FLASH_BOARD', `a RAM window of ${window.ramWindow} bytes cannot hold two ${bs}-byte blocks`, 'raise serial.ramWindow in the board file');
  }
  const pageUnit = pageUnit0;
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
  return {
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
}
