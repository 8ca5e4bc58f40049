/**
 * The full flash image of a board (`signet disk`): GPT with the board's partitions, the boot
 * image (FIT) in `boot`, the app image in `slot_a`, `slot_b` empty (or a fallback image), and
 * the initial boot state in `state` (bootloader/src/provision.ts). Every image is verified for
 * the board before anything is written; the file appears atomically (temp file + rename).
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PartitionDevice } from '../../bootloader/src/block';
import { FileBlockDevice } from '../../bootloader/src/block-file';
import { provisionBootEnv } from '../../bootloader/src/bootenv';
import { provisionFlash, type FlashLayout } from '../../bootloader/src/provision';
import { partition, type Board } from '../board';
import { decodeFdtHeader, FDT_HEADER_SIZE, FDT_MAGIC } from '../fit/fdt';
import { nodeCrypto } from '../image/crypto-node';
import { readImageFile } from '../image/file';
import { verifyImage, type VerifiedImage } from '../image/verify';
import { loadTrustedRootFile } from '../ota/root-file';
import { writeOutputWith } from '../util/fs-atomic';
import { requiredConfKeys, verifyFit } from '../fit/fit-verify';
import { readPublicKeysFromDtb } from '../fit/keydtb';
import { abLayout, abPartitions, DEFAULT_BOOTLIMIT, type AbLayout } from './boot-ab';
import { buildBootImage, type BootImage } from './boot-image';
import { asSignetError, DiskError } from './errors';
import { decodeGpt, encodeGpt, type GptLayout } from './gpt';

export interface DiskOptions {
  /** The boot image's OTA release fields (`--boot-version`, `--boot-security-counter`; BootImageOptions.release). */
  bootRelease?: { version: string; securityCounter: number };
  board: Board;
  /** The app image for slot A (.simg). */
  appImage: string;
  /** Optional image for slot B (a factory fallback); B is left empty otherwise. */
  slotBImage?: string;
  keysDir: string;
  /** The FIT signing key instead of <keysDir>/fit.key (a file or a `pkcs11:` URI). */
  fitKey?: string;
  out: string;
  testMode?: boolean;
  timestamp?: number;
  /**
   * A/B boot slots (sdk/disk/boot-ab.ts): `boot_a`, `boot_b` and `bootenv` instead of `boot`.
   * Both slots get the boot image built here unless `fitA`/`fitB` give one (a FIT signed by the
   * same key: checked against it before anything is written).
   */
  bootAb?: { fitA?: Uint8Array; fitB?: Uint8Array; bootlimit?: number };
}

export interface DiskResult {
  out: string;
  bytes: number;
  gpt: GptLayout;
  boot: BootImage;
  slotA: VerifiedImage['manifest'];
  slotB?: VerifiedImage['manifest'];
  securityFloor: number;
  /** The A/B layout when `bootAb` was asked for. */
  ab?: AbLayout;
}

export function flashLayout(board: Board): FlashLayout {
  const p = (name: string) => {
    const x = partition(board, name);
    return { offset: x.offset, size: x.size };
  };
  return { slot_a: p('slot_a'), slot_b: p('slot_b'), state: p('state') };
}

function verifyForBoard(path: string, board: Board, rootPath: string, what: string): { bytes: Uint8Array; image: VerifiedImage } {
  const now = Math.floor(Date.now() / 1000);
  const root = loadTrustedRootFile(rootPath, nodeCrypto, now);
  const bytes = readImageFile(path);
  const image = verifyImage(bytes, { root, board: board.id, now, crypto: nodeCrypto });
  const slot = partition(board, 'slot_a');
  if (bytes.length > slot.size) {
    throw new DiskError('E_DISK_TOO_LARGE', `${what} ${path} is ${bytes.length} bytes, slots on ${board.id} hold ${slot.size}`, 'make the app smaller');
  }
  return { bytes, image };
}

function writeAll(fd: number, bytes: Uint8Array, offset: number): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, offset + done);
}

export async function buildDisk(o: DiskOptions): Promise<DiskResult> {
  try {
    const { board } = o;
    const rootPath = join(o.keysDir, 'root.json');
    const a = verifyForBoard(o.appImage, board, rootPath, 'app image');
    const b = o.slotBImage ? verifyForBoard(o.slotBImage, board, rootPath, 'slot B image') : undefined;
    const boot = await buildBootImage({ board, keysDir: o.keysDir, fitKey: o.fitKey, testMode: o.testMode, timestamp: o.timestamp, release: o.bootRelease });
    const bootPart = partition(board, 'boot');
    if (boot.fit.length > bootPart.size) {
      throw new DiskError('E_DISK_TOO_LARGE', `the boot image is ${boot.fit.length} bytes, the boot partition of ${board.id} holds ${bootPart.size}`, 'enlarge the boot partition in the board file');
    }
    const ab = o.bootAb ? abLayout(board) : null;
    if (o.bootAb && !ab) throw new DiskError('E_DISK_TOO_LARGE', `the flash of ${board.id} has no room for a second boot slot`, 'build the disk without --boot-ab');
    const fitA = o.bootAb?.fitA ?? boot.fit;
    const fitB = o.bootAb?.fitB ?? boot.fit;
    if (o.bootAb) {
      const keys = requiredConfKeys(readPublicKeysFromDtb(boot.keyDtb));
      for (const [name, fit] of [['boot_a', fitA], ['boot_b', fitB]] as const) {
        if (fit.length > bootPart.size) throw new DiskError('E_DISK_TOO_LARGE', `the ${name} image is ${fit.length} bytes, the slot holds ${bootPart.size}`, 'use a smaller boot image');
        verifyFit(fit, keys); // U-Boot would refuse it: so do we, before writing anything
      }
    }
    const partitions = ab ? abPartitions(board, ab) : board.flash.partitions;
    const seed = createHash('sha256').update(board.id).update(fitA).update(ab ? fitB : new Uint8Array(0)).update(a.bytes).update(b?.bytes ?? new Uint8Array(0)).digest();
    const gpt = encodeGpt({ diskBytes: board.flash.size, sectorSize: board.flash.blockSize, partitions, seed });

    // Both slots provisioned as good: the device starts at the lower counter so either boots.
    const counterA = a.image.manifest.securityCounter;
    const securityFloor = b ? Math.min(counterA, b.image.manifest.securityCounter) : counterA;
    // Built in a temp file, then renamed over a regular --out (or copied into a device or FIFO).
    writeOutputWith(o.out, (tmp) => {
      const fd = openSync(tmp, 'r+');
      try {
        ftruncateSync(fd, board.flash.size); // sparse: unwritten space reads as zeros
        // NOR (an erase block declared): unwritten space is erased flash, 0xff, as the chip holds
        // it after an erase; signet flash then only erases there, it programs nothing.
        if (board.flash.eraseBlockSize !== undefined) fillErased(fd, board.flash.size);
        writeAll(fd, gpt.primary.bytes, gpt.primary.offset);
        writeAll(fd, gpt.backup.bytes, gpt.backup.offset);
        writeAll(fd, fitA, bootPart.offset);
        if (ab) writeAll(fd, fitB, ab.boot_b.offset);
      } finally {
        closeSync(fd);
      }
      const dev = new FileBlockDevice(tmp, board.flash.blockSize, true, board.flash.eraseBlockSize);
      try {
        provisionFlash(dev, flashLayout(board), { slotA: a.bytes, slotB: b?.bytes, securityFloor });
        if (ab) provisionBootEnv(new PartitionDevice(dev, ab.bootenv.offset, ab.bootenv.size), 'a', o.bootAb?.bootlimit ?? DEFAULT_BOOTLIMIT);
      } finally {
        dev.close();
      }
    });
    return { out: o.out, bytes: board.flash.size, gpt: gpt.layout, boot, slotA: a.image.manifest, slotB: b?.image.manifest, securityFloor, ...(ab ? { ab } : {}) };
  } catch (e) {
    throw asSignetError(e);
  }
}

/**
 * Opens a disk image file read-only (E_DISK_NOT_A_DISK if it cannot be opened), runs `read` on
 * its descriptor and closes it, whatever `read` does.
 */
export function withDiskFile<T>(path: string, read: (fd: number) => T): T {
  let fd: number;
  try {
    // Non-blocking, so that a FIFO given as the disk is refused below instead of waiting for a writer.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (cause) {
    throw new DiskError('E_DISK_NOT_A_DISK', `cannot open ${path}`, 'pass a disk image made by `signet disk`', cause);
  }
  try {
    if (!fstatSync(fd).isFile()) throw new DiskError('E_DISK_NOT_A_DISK', `${path} is not a regular file`, 'pass a disk image made by `signet disk`');
    return read(fd);
  } finally {
    closeSync(fd);
  }
}

/** Reads `length` bytes at `offset` of an open file, exactly. */
function readAt(fd: number, offset: number, length: number): Uint8Array {
  const b = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, b, got, length - got, offset + got);
    if (n === 0) throw new DiskError('E_DISK_NOT_A_DISK', `the disk image ends at ${offset + got} bytes, expected ${offset + length}`, 'pass a disk image made by `signet disk`');
    got += n;
  }
  return b;
}

export interface DiskBootImage {
  fit: Uint8Array;
  /** Offset and size of the boot partition (an A/B disk: boot_a), in bytes. */
  boot: { offset: number; size: number };
  /** An A/B disk's layout (`signet disk --boot-ab`: boot_a, boot_b, bootenv). */
  ab?: AbLayout;
}

/**
 * Opens a disk image for a board: its size, its GPT (which must list the board's partitions at
 * the board's offsets, or on an A/B disk its A/B partitions) and the FIT in its boot partition
 * (boot_a on an A/B disk).
 */
export function readDiskBootImage(path: string, board: Board): DiskBootImage {
  return withDiskFile(path, (fd) => {
    const size = fstatSync(fd).size;
    if (size !== board.flash.size) {
      throw new DiskError('E_DISK_NOT_A_DISK', `${path} is ${size} bytes, the flash of ${board.id} is ${board.flash.size}`, `make it with \`signet disk --board ${board.id}\``);
    }
    const gpt = decodeGpt((off, len) => readAt(fd, off, len), board.flash.blockSize);
    const ab = gpt.partitions.some((x) => x.name === 'boot_a') ? abLayout(board) : null;
    for (const p of ab ? abPartitions(board, ab) : board.flash.partitions) {
      const got = gpt.partitions.find((x) => x.name === p.name);
      if (!got || got.offset !== p.offset || got.size !== p.size) {
        throw new DiskError('E_DISK_NOT_A_DISK', `${path} has no partition ${p.name} at ${p.offset} (+${p.size}) as ${board.id} lays out its flash`, `make it with \`signet disk --board ${board.id}\``);
      }
    }
    const bootPart = ab ? ab.boot_a : partition(board, 'boot');
    const head = readAt(fd, bootPart.offset, FDT_HEADER_SIZE);
    const header = decodeFdtHeader(head);
    if (header.magic !== FDT_MAGIC) throw new DiskError('E_DISK_NOT_A_DISK', `the boot partition of ${path} holds no FIT`, 'rebuild the disk with `signet disk`');
    const total = header.totalSize;
    if (total > bootPart.size) throw new DiskError('E_DISK_NOT_A_DISK', `the FIT in ${path} claims ${total} bytes, more than its partition`, 'rebuild the disk with `signet disk`');
    return { fit: readAt(fd, bootPart.offset, total), boot: { offset: bootPart.offset, size: bootPart.size }, ...(ab ? { ab } : {}) };
  });
}

/** Writes 0xff over [0, size): the erased state of NOR flash. */
function fillErased(fd: number, size: number): void {
  const erased = Buffer.alloc(Math.min(size, 1 << 20), 0xff);
  for (let at = 0; at < size; at += erased.length) writeAll(fd, erased.subarray(0, Math.min(erased.length, size - at)), at);
}
