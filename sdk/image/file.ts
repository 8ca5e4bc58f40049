/** App images as files (workstation side): read with a cap, inspect, verify. */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { nodeCrypto } from './crypto-node';
import { readInputFile } from '../util/files';
import { toHex } from '../util/bytes';
import { loadBoard, partition } from '../board';
import { loadTrustedRootFile } from '../ota/root-file';
import { ImageError } from './errors';
import {
  checkHeaderCaps, checkImageFitsSlot, decodeHeader, decodeLayout, imageSizeFrom, sigBlockOffset,
  MAX_MANIFEST_SIZE, MAX_PAYLOAD_SIZE, MAX_SIGNATURES, HEADER_SIZE, SIG_BLOCK_HEADER_SIZE, SIG_ENTRY_SIZE,
} from './format';
import { decodeManifest, type Manifest } from './manifest';
import { verifyImage, type VerifiedImage } from './verify';

export const MAX_IMAGE_FILE = HEADER_SIZE + MAX_MANIFEST_SIZE + MAX_PAYLOAD_SIZE + SIG_BLOCK_HEADER_SIZE + MAX_SIGNATURES * SIG_ENTRY_SIZE;

function readAt(fd: number, offset: number, length: number): Uint8Array {
  const buf = new Uint8Array(length);
  let n = 0;
  while (n < length) {
    const r = readSync(fd, buf, n, length - n, offset + n);
    if (r === 0) break;
    n += r;
  }
  return buf.subarray(0, n);
}

/**
 * A file longer than any image can be is judged as the format says (docs/image-format.md §5):
 * from its header and signature-block header alone, without reading the rest. Its verdict is
 * the header's or the signature block's, else E_TRAILING_DATA: it cannot be E_TRUNCATED.
 */
function judgeOversizedImage(path: string, size: number, slotBytes?: number): never {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    readInputFile(path, MAX_IMAGE_FILE, 'Signet app image (.simg)'); // throws the file error
    throw new ImageError('E_TRAILING_DATA', path + ' is ' + size + ' bytes, longer than any image');
  }
  try {
    const h = decodeHeader(readAt(fd, 0, HEADER_SIZE));
    checkHeaderCaps(h, undefined, slotBytes);
    const total = imageSizeFrom(h, readAt(fd, sigBlockOffset(h), SIG_BLOCK_HEADER_SIZE));
    checkImageFitsSlot(total, slotBytes);
    throw new ImageError('E_TRAILING_DATA', (size - total) + ' bytes follow the end of the image');
  } finally {
    closeSync(fd);
  }
}

/**
 * Read an image file whole (it is at most MAX_IMAGE_FILE bytes). A regular file longer than
 * that gets its format verdict (see judgeOversizedImage), not a file error.
 */
export function readImageFile(path: string, slotBytes?: number): Uint8Array {
  let size = -1;
  try {
    const st = statSync(path);
    if (st.isFile()) size = st.size;
  } catch {
    // readInputFile reports it
  }
  if (size > MAX_IMAGE_FILE) judgeOversizedImage(path, size, slotBytes);
  return readInputFile(path, MAX_IMAGE_FILE, 'Signet app image (.simg)');
}

/** The slot an image for `boardId` must fit: the smaller of the board's two app slots. */
export function boardSlotBytes(boardId: string): number {
  const b = loadBoard(boardId);
  return Math.min(partition(b, 'slot_a').size, partition(b, 'slot_b').size);
}

export interface ImageDescription {
  file: string;
  totalSize: number;
  header: { formatVersion: number; headerSize: number; manifestSize: number; payloadSize: number; flags: number };
  manifest: Manifest;
  signatures: { keyid: string; status?: string }[];
}

/** Structure and manifest only; no trust decision (that is `verify`). */
export function describeImage(path: string, bytes: Uint8Array): ImageDescription {
  const layout = decodeLayout(bytes);
  const manifest = decodeManifest(layout.manifestBytes);
  return {
    file: path,
    totalSize: layout.totalSize,
    header: layout.header,
    manifest,
    signatures: layout.signatures.map((s) => ({ keyid: toHex(s.keyid) })),
  };
}

export interface VerifyFileOptions {
  rootPath: string;
  board: string;
  minSecurityCounter?: number;
  /** Unix seconds; undefined = this machine's clock; null = judge as a device without a clock. */
  now?: number | null;
  /** The slot size; default: the board's (boards/<id>/board.json), as the boot stage applies it. */
  slotBytes?: number;
}

/**
 * The device's decision on an image file (docs/image-format.md §5), everything the boot stage
 * checks: structure, the board's slot size, root (E_ROOT, after the structure), signatures,
 * manifest, board, expiry (with a clock), security counter floor, payload digests. What it
 * cannot know is the device's own state: its floor, its clock, a newer root it rotated to.
 */
export function verifyImageFile(path: string, opts: VerifyFileOptions): VerifiedImage {
  const now = opts.now === undefined ? Math.floor(Date.now() / 1000) : opts.now;
  const slotBytes = opts.slotBytes ?? boardSlotBytes(opts.board);
  return verifyImage(readImageFile(path, slotBytes), {
    root: () => loadTrustedRootFile(opts.rootPath, nodeCrypto, now),
    board: opts.board,
    minSecurityCounter: opts.minSecurityCounter,
    now,
    crypto: nodeCrypto,
    slotBytes,
  });
}
