/**
 * Pre-flight check of a disk image (`signet disk`) before `signet flash` sends any byte: the
 * device would refuse to boot what does not verify, so the flasher refuses to send it. Steps,
 * in order, each failing closed with E_FLASH_REFUSED and the failing check's code as `reason`:
 *
 *   1. layout      the file is exactly the board's flash, its GPT lists the board's partitions
 *                  at the board's offsets, and the boot partition holds a FIT (sdk/disk)
 *   2. boot image  the FIT's configuration is signed by every required key (what U-Boot checks,
 *                  sdk/fit verifyFit), and its kernel, ramdisk and fdt are for this board
 *                  (architecture and load addresses of board.json)
 *   3. slot A      holds an app image that verifies for this board with the vendor's root
 *                  metadata (signatures and threshold, board, expiry, digests: verifyImage)
 *   4. slot B      empty (erased), or an app image that verifies like slot A
 *
 * The verified bytes are kept: `DiskSource` reads the file for the flasher and refuses to hand
 * out anything that differs from them (the file changed after the check).
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { partition, type Board } from '../board';
import { readDiskBootImage } from '../disk/disk';
import { FIT_KEY_NAME, loadFitSigner } from '../disk/fit-key';
import { requiredConfKeys, verifyFit, type FitVerifyKey, type VerifiedFit } from '../fit/fit-verify';
import { readPublicKeysFromDtb } from '../fit/keydtb';
import { nodeCrypto } from '../image/crypto-node';
import { ImageError } from '../image/errors';
import { decodeHeader, HEADER_SIZE, imageSizeFrom, sigBlockOffset, SIG_BLOCK_HEADER_SIZE } from '../image/format';
import type { Manifest } from '../image/manifest';
import { verifyImage } from '../image/verify';
import { loadTrustedRootFile } from '../ota/root-file';
import { isSignetError } from '../util/errors';
import { FlashError } from './flasher-errors';

/** Where the trust comes from: a keys folder (`signet keys init`), or root.json plus U-Boot's key DTB. */
export type FlashTrustSource = { keys: string } | { root: string; keyDtb: string };

export interface FlashTrust {
  /** root.json: the trust anchor for app images. */
  rootPath: string;
  /** The FIT keys U-Boot requires (required = "conf"). */
  fitKeys: FitVerifyKey[];
  /** What the trust was loaded from, for messages. */
  describe: string;
}

export interface VerifiedSlot {
  slot: 'slot_a' | 'slot_b';
  offset: number;
  bytes: number;
  manifest: Manifest;
}

export interface CheckedDisk {
  path: string;
  board: Board;
  bytes: number;
  bootImage: { offset: number; bytes: number; configuration: string; keyNames: string[]; description?: string };
  slotA: VerifiedSlot;
  slotB?: VerifiedSlot;
  /** Reads the image for the flasher; refuses bytes that differ from what was verified. */
  source: DiskSource;
}

/** `--keys` uses the folder's root.json and the public half of fit.key; `--root`/`--key-dtb` need no private key. */
export async function loadFlashTrust(source: FlashTrustSource): Promise<FlashTrust> {
  if ('keys' in source) {
    const signer = await loadFitSigner(source.keys);
    return { rootPath: join(source.keys, 'root.json'), fitKeys: [{ keyName: FIT_KEY_NAME, publicKey: signer.publicKey() }], describe: source.keys };
  }
  let dtb: Uint8Array;
  try {
    dtb = new Uint8Array(readFileSync(source.keyDtb));
  } catch (cause) {
    throw new FlashError('E_FLASH_TRUST', `cannot read the key DTB ${source.keyDtb}`, 'pass the file written by `signet fit --key-dtb` or `signet disk --key-dtb`', {}, cause);
  }
  let fitKeys: FitVerifyKey[];
  try {
    fitKeys = requiredConfKeys(readPublicKeysFromDtb(dtb));
  } catch (cause) {
    throw new FlashError('E_FLASH_TRUST', `${source.keyDtb} is not a U-Boot public-key device tree`, 'pass the file written by `signet fit --key-dtb`', { reason: codeOf(cause) }, cause);
  }
  if (fitKeys.length === 0) {
    throw new FlashError('E_FLASH_TRUST', `${source.keyDtb} holds no key with required = "conf"`, 'pass the key DTB baked into the board\'s U-Boot');
  }
  return { rootPath: source.root, fitKeys, describe: `${source.root} + ${source.keyDtb}` };
}

const FIT_ARCH: Record<Board['arch'], string> = { arm64: 'arm64', armhf: 'arm' };

/** Runs the four steps above. Throws E_FLASH_REFUSED (or a trust error) and opens nothing else. */
export function checkDisk(path: string, board: Board, trust: FlashTrust, nowSeconds = Math.floor(Date.now() / 1000)): CheckedDisk {
  // The root is the trust anchor, not part of the disk: its errors are the caller's input errors.
  const root = loadTrustedRootFile(trust.rootPath, nodeCrypto, nowSeconds);
  const refuse = (what: string, cause: unknown): never => {
    const reason = codeOf(cause) ?? 'E_UNKNOWN';
    const why = isSignetError(cause) ? cause.message : (cause as Error)?.message?.split(' — ')[0] ?? String(cause);
    throw new FlashError(
      'E_FLASH_REFUSED',
      `${path}: ${what} does not verify for ${board.id} (${reason}: ${why})`,
      `nothing was sent to the board; build the disk with \`signet disk --board ${board.id}\` and keys this board trusts`,
      { reason },
      cause,
    );
  };

  // 1. layout
  let boot: ReturnType<typeof readDiskBootImage>;
  try {
    boot = readDiskBootImage(path, board);
  } catch (e) {
    return refuse('the disk layout', e);
  }

  // 2. boot image
  let fit: VerifiedFit;
  try {
    fit = verifyFit(boot.fit, trust.fitKeys);
  } catch (e) {
    return refuse('the boot image (FIT)', e);
  }
  const mismatch = fitBoardMismatch(fit, board);
  if (mismatch) refuse('the boot image (FIT)', { code: 'E_FIT_BOARD', message: mismatch });

  const source = new DiskSource(path, board.flash.size);
  try {
    source.addVerified(boot.boot.offset, boot.fit, 'the boot image');

    // 3. slot A
    const slotA = verifySlot(source, board, 'slot_a', root, nowSeconds, refuse);
    if (!slotA) refuse('slot A', { code: 'E_SLOT_EMPTY', message: 'slot A holds no app image' });

    // 4. slot B
    const slotB = verifySlot(source, board, 'slot_b', root, nowSeconds, refuse);

    return {
      path,
      board,
      bytes: board.flash.size,
      bootImage: {
        offset: boot.boot.offset,
        bytes: boot.fit.length,
        configuration: fit.configuration,
        keyNames: fit.signatures.map((s) => s.keyName),
      },
      slotA: slotA!,
      ...(slotB ? { slotB } : {}),
      source,
    };
  } catch (e) {
    source.close();
    throw e;
  }
}

/** A FIT for another board: wrong architecture, or kernel/ramdisk/fdt loaded elsewhere. */
function fitBoardMismatch(fit: VerifiedFit, board: Board): string | undefined {
  const want: Record<string, string> = { kernel: board.loadAddresses.kernel, ramdisk: board.loadAddresses.ramdisk, fdt: board.loadAddresses.fdt };
  for (const role of ['kernel', 'ramdisk', 'fdt']) {
    const image = fit.images.find((i) => i.role === role);
    if (!image) return `the FIT has no ${role}`;
    if (image.arch !== undefined && image.arch !== FIT_ARCH[board.arch]) return `its ${role} is for ${image.arch}, the board is ${FIT_ARCH[board.arch]}`;
    if (image.load === undefined || image.load !== BigInt(want[role]!)) {
      return `its ${role} loads at ${image.load === undefined ? 'no address' : '0x' + image.load.toString(16)}, the board's ${role} address is ${want[role]}`;
    }
  }
  const kernel = fit.images.find((i) => i.role === 'kernel')!;
  if (kernel.arch === undefined) return 'its kernel names no architecture';
  return undefined;
}

function verifySlot(
  source: DiskSource,
  board: Board,
  slot: 'slot_a' | 'slot_b',
  root: ReturnType<typeof loadTrustedRootFile>,
  nowSeconds: number,
  refuse: (what: string, cause: unknown) => never,
): VerifiedSlot | undefined {
  const what = slot === 'slot_a' ? 'the app image in slot A' : 'the app image in slot B';
  const part = partition(board, slot);
  // Same reading rule as the boot stage (bootloader/src/stage.ts readSlotImage): header, then
  // the signature-block header, then exactly the image; an erased or zeroed header is "empty".
  try {
    const head = source.readRaw(part.offset, HEADER_SIZE);
    if (head.every((b) => b === 0xff) || head.every((b) => b === 0)) return undefined;
    const header = decodeHeader(head);
    const sigOff = sigBlockOffset(header);
    if (sigOff + SIG_BLOCK_HEADER_SIZE > part.size) throw new ImageError('E_SIZE_CAP', 'the image header describes more than the slot holds');
    const total = imageSizeFrom(header, source.readRaw(part.offset + sigOff, SIG_BLOCK_HEADER_SIZE), part.size);
    if (total > part.size) throw new ImageError('E_SIZE_CAP', 'the image is larger than the slot');
    const bytes = source.readRaw(part.offset, total);
    const image = verifyImage(bytes, { root, board: board.id, now: nowSeconds, crypto: nodeCrypto, maxPayloadBytes: part.size });
    source.addVerified(part.offset, bytes, what);
    return { slot, offset: part.offset, bytes: total, manifest: image.manifest };
  } catch (e) {
    return refuse(what, e);
  }
}

function codeOf(e: unknown): string | undefined {
  const code = e && typeof e === 'object' ? (e as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

/**
 * The disk image as the flasher reads it: plain reads, except that any byte inside a region the
 * check verified must still be what was verified.
 */
export class DiskSource {
  readonly path: string;
  readonly size: number;
  private fd: number;
  private readonly verified: { offset: number; bytes: Uint8Array; what: string }[] = [];

  constructor(path: string, expectedSize: number) {
    this.path = path;
    this.fd = openSync(path, 'r');
    this.size = fstatSync(this.fd).size;
    if (this.size !== expectedSize) {
      closeSync(this.fd);
      throw new FlashError('E_FLASH_DISK_CHANGED', `${path} is ${this.size} bytes now, ${expectedSize} when it was checked`, 'do not change the disk image while flashing; run again');
    }
  }

  addVerified(offset: number, bytes: Uint8Array, what: string): void {
    this.verified.push({ offset, bytes, what });
  }

  /** `length` bytes at `offset`, checked against the verified regions. */
  read(offset: number, length: number): Uint8Array {
    const out = this.readRaw(offset, length);
    for (const v of this.verified) {
      const from = Math.max(offset, v.offset);
      const to = Math.min(offset + length, v.offset + v.bytes.length);
      if (from >= to) continue;
      const a = out.subarray(from - offset, to - offset);
      const b = v.bytes.subarray(from - v.offset, to - v.offset);
      if (Buffer.compare(a, b) !== 0) {
        throw new FlashError('E_FLASH_DISK_CHANGED', `${this.path} changed after it was verified (${v.what})`, 'do not change the disk image while flashing; run again');
      }
    }
    return out;
  }

  readRaw(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const n = readSync(this.fd, out, got, length - got, offset + got);
      if (n === 0) throw new FlashError('E_FLASH_DISK_CHANGED', `${this.path} ends at ${offset + got} bytes, expected ${offset + length}`, 'do not change the disk image while flashing; run again');
      got += n;
    }
    return out;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
