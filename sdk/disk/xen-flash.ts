/**
 * The DomU's flash. A dom0less guest has no PV block backend (that would live in a dom0, and
 * there is none), and the Debian armmp kernel has neither the CFI nor the physmap-of driver a
 * passed-through QEMU pflash would need. So the guest's flash travels as a file in its
 * initramfs, `/signet/flash.img`, which the boot stage opens instead of the board's device
 * (kernel args `-- --disk /signet/flash.img`; `blockOpen` works on files) and reads, verifies
 * and writes exactly as it would the real flash.
 *
 * The file is the head of the board's flash, byte for byte: from offset 0 to the end of the
 * last of slot_a, slot_b and state (xen-arm32 puts those first and the boot partition last, so
 * the head is about 17 MiB, not the whole 128 MiB). The boot stage keeps the board's offsets.
 * It is a second cpio archive appended to the boot initramfs (the kernel unpacks concatenated
 * archives in order, compressed or not; an uncompressed one must start 4-byte aligned, which
 * the FIT's gzip'd initramfs is padded for), so the boot image's bytes do not depend on the
 * slots.
 * Writes (trial counters, confirm) land in the guest's RAM and end with the guest.
 */
import { readSync } from 'node:fs';
import type { Board } from '../board';
import { decodeLayout } from '../image/format';
import { decodeManifest } from '../image/manifest';
import { SimFlash } from '../../bootloader/src/block-sim';
import { provisionFlash } from '../../bootloader/src/provision';
import { writeCpio } from './cpio';
import { flashLayout, withDiskFile } from './disk';
import { DiskError } from './errors';
import { XenError } from './xen-errors';

/** Where the boot stage in the DomU finds its flash. */
export const DOMU_FLASH_PATH = '/signet/flash.img';
export const DOMU_FLASH_CPIO_PATH = 'signet/flash.img';

/** The head of the flash must fit the guest's RAM twice (initrd, then its unpacked copy) with room to spare. */
const MAX_SHARE_OF_GUEST_RAM = 0.25;

/** Bytes of the flash the DomU gets: up to the end of the last partition the boot stage uses. */
export function domUFlashBytes(board: Board): number {
  const l = flashLayout(board);
  const size = Math.max(...[l.slot_a, l.slot_b, l.state].map((p) => p.offset + p.size));
  const guestRam = (board.xen?.domUMemoryMb ?? 0) * 1024 * 1024;
  if (size > guestRam * MAX_SHARE_OF_GUEST_RAM) {
    throw new XenError('E_XEN_BOARD', `the DomU would carry ${size} bytes of flash in its ${guestRam}-byte RAM (slots and state end at ${size})`, `put slot_a, slot_b and state before the boot partition in boards/${board.id}/board.json, or raise xen.domUMemoryMb`);
  }
  return size;
}

/** The security counter an image claims, unverified (the device decides; this only seeds the floor). */
function claimedCounter(image: Uint8Array): number {
  try {
    return decodeManifest(decodeLayout(image).manifestBytes).securityCounter;
  } catch {
    return 0;
  }
}

/** A factory-fresh flash head: the app image in slot A, slot B blank, the state initialised. */
export function domUFlashFromApp(board: Board, appImage: Uint8Array): Uint8Array {
  const layout = flashLayout(board);
  if (appImage.length > layout.slot_a.size) {
    throw new DiskError('E_DISK_TOO_LARGE', `the app image is ${appImage.length} bytes, slot_a of ${board.id} holds ${layout.slot_a.size}`, 'make the app smaller or the slot larger in board.json');
  }
  const flash = new SimFlash(domUFlashBytes(board), board.flash.blockSize);
  flash.bytes.fill(0); // as `signet disk` leaves unwritten space
  provisionFlash(flash, layout, { slotA: appImage, securityFloor: claimedCounter(appImage) });
  return flash.bytes;
}

/** The head of a disk image file (as `signet disk` writes it), read without loading the rest. */
export function domUFlashFromDiskFile(board: Board, path: string): Uint8Array {
  const size = domUFlashBytes(board);
  const out = new Uint8Array(size);
  withDiskFile(path, (fd) => {
    let got = 0;
    while (got < size) {
      const n = readSync(fd, out, got, size - got, got);
      if (n === 0) {
        throw new DiskError('E_DISK_NOT_A_DISK', `${path} ends at ${got} bytes but the slots and state of ${board.id} end at ${size}`, `make it with \`signet disk --board ${board.id}\``);
      }
      got += n;
    }
  });
  return out;
}

/** The flash head as a cpio archive to append to the boot initramfs. */
export function domUFlashCpio(flash: Uint8Array): Uint8Array {
  return writeCpio([
    { type: 'dir', path: 'signet', mode: 0o755 },
    { type: 'file', path: DOMU_FLASH_CPIO_PATH, data: flash, mode: 0o600 },
  ]);
}
