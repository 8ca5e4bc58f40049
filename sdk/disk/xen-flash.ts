/**
 * The DomU's flash: the board's NOR flash itself, handed to the guest by Xen. No dom0, no PV
 * block backend: the dom0less DomU gets a partial device tree (a `multiboot,device-tree`
 * module) whose /passthrough node describes the flash as a `cfi-flash` device, and Xen maps the
 * bank's MMIO range into the guest (`xen,reg`). The flash does no DMA and raises no interrupt,
 * so no IOMMU is needed (`xen,force-assign-without-iommu`, no `xen,path`). The guest kernel
 * (boards/xen-arm32/kernel.config) drives it with physmap-of + the CFI probe + mtdblock, and the
 * boot stage opens /dev/mtdblock0 (the board's `flash.device`) with the board's offsets.
 *
 * Under QEMU the flash is `virt`'s second pflash bank: 64 MiB at 0x04000000, backed by the disk
 * image file itself (`-drive if=pflash,unit=1,file=disk.img`), so what the guest writes (trial
 * counters, confirm, the security floor, staged updates) is in the file at the next boot. Bank 0
 * stays without a drive: with one, QEMU would boot it as firmware instead of Xen.
 *
 * NOR is erased in blocks (256 KiB on QEMU's pflash) and mtdblock rewrites a whole erase block
 * for each flushed write: a cut between the erase and the program loses the whole block. So
 * every area that must survive another's write (each slot, each state copy, chain area and
 * config copy) lies in erase blocks of its own: the board declares flash.eraseBlockSize, the
 * writers lay the state partition out by it, and `checkEraseLayout` refuses a board that does not.
 *
 * Debian's binary armmp kernel (`kernel.source: "debian-binary"`) has neither the CFI probe nor
 * physmap-of, so it cannot drive the bank: with it the DomU gets the head of the flash (offset 0 to
 * the end of slot_a, slot_b and state) as a file in its initramfs instead, `/signet/flash.img`,
 * a second cpio archive after the boot initramfs. Its writes end with the guest (nothing persists).
 */
import { closeSync, ftruncateSync, openSync, readSync, rmSync } from 'node:fs';
import type { Board } from '../board';
import { eraseLayoutErrors } from '../board/schema';
import { decodeLayout } from '../image/format';
import { decodeManifest } from '../image/manifest';
import { cellsValue, encodeFdt, fdtNode, fdtProp, getProp, newFdt, readStringList, readU32, stringProp, u32Prop, type Fdt } from '../fit/fdt';
import { FileBlockDevice } from '../../bootloader/src/block-file';
import { provisionFlash } from '../../bootloader/src/provision';
import { writeCpio } from './cpio';
import { flashLayout, withDiskFile } from './disk';
import { DiskError } from './errors';
import { hex, rootChildRanges } from './xen-dt';
import { gicPlaceholder, nicNode, type PassthroughNic } from './xen-net';
import { XenError } from './xen-errors';

/** The device node the DomU kernel's mtdblock gives the passed-through flash (its only MTD device). */
export const DOMU_FLASH_DEVICE = '/dev/mtdblock0';

/**
 * QEMU `virt`'s second NOR bank (hw/arm/virt.c: two 64 MiB pflash_cfi01 banks at 0 and
 * 0x04000000, 256 KiB sectors), the one a drive can back without replacing Xen as firmware.
 */
export const QEMU_VIRT_PFLASH = { unit: 1, address: 0x04000000, size: 64 * 1024 * 1024, eraseBlock: 256 * 1024 } as const;

/**
 * Where a DomU that is not direct-mapped sees its flash: a hole in Xen 4.17's guest memory map (public/arch-arm.h: GIC
 * regions end at 0x04020000, vPCI ECAM starts at 0x10000000), 64 MiB aligned.
 */
export const DOMU_FLASH_GUEST_ADDRESS = 0x08000000;

export const CFI_FLASH_COMPATIBLE = 'cfi-flash';

/**
 * Whether the DomU kernel drives the NOR bank: the board's own kernel, built from source with
 * its fragment (boards/xen-arm32/kernel.config has MTD CFI, physmap-of and mtdblock), does;
 * Debian's binary armmp kernel does not, and gets the RAM copy below.
 */
export function kernelDrivesFlash(board: Board): boolean {
  return board.kernel.source === 'debian-source';
}

/** The NOR bank Xen passes through: where it is on the host and in the guest. */
export interface PassthroughFlash {
  hostAddress: number;
  guestAddress: number;
  size: number;
  /** Bytes per bus access, from the host tree's `bank-width`. */
  bankWidth: number;
  eraseBlock: number;
}

/**
 * The board must declare the bank's erase block (flash.eraseBlockSize), so that its partitions
 * and the state partition's six areas each own their erase blocks (sdk/board/schema.ts
 * eraseLayoutErrors; the writers lay the state partition out by it, configstore.ts
 * stateConfigAreas): then no mtdblock rewrite, cut or not, reaches another area.
 */
export function checkEraseLayout(board: Board, eraseBlock: number): void {
  if (board.flash.eraseBlockSize !== eraseBlock) {
    throw new XenError(
      'E_XEN_BOARD',
      `the flash of ${board.id} declares erase blocks of ${board.flash.eraseBlockSize ?? board.flash.blockSize} bytes, but the NOR bank erases ${eraseBlock} at a time, so a cut rewrite could tear an area the layout thinks separate`,
      `set flash.eraseBlockSize to ${eraseBlock} in boards/${board.id}/board.json`,
    );
  }
  const errs = eraseLayoutErrors(board);
  if (errs.length) {
    throw new XenError('E_XEN_BOARD', `the flash layout of ${board.id} shares ${eraseBlock}-byte NOR erase blocks between areas: ${errs[0]}`, `align the partitions to ${eraseBlock} bytes and size state as the message says in boards/${board.id}/board.json`);
  }
}

/**
 * The bank to pass through, checked against the platform tree (a `cfi-flash` node must cover
 * it) and the board (its flash must be exactly the bank, with its device the guest's mtdblock).
 */
export function passthroughFlash(board: Board, platform: Fdt, directMap = false): PassthroughFlash {
  const bank = QEMU_VIRT_PFLASH;
  if (board.flash.size !== bank.size) {
    throw new XenError('E_XEN_BOARD', `the flash of ${board.id} is ${board.flash.size} bytes but the NOR bank passed to the DomU is ${bank.size}`, `set flash.size to ${bank.size} in boards/${board.id}/board.json`);
  }
  if (board.flash.device !== DOMU_FLASH_DEVICE) {
    throw new XenError('E_XEN_BOARD', `the flash device of ${board.id} is ${board.flash.device}, but the DomU sees its passed-through flash as ${DOMU_FLASH_DEVICE}`, `set flash.device to "${DOMU_FLASH_DEVICE}" in boards/${board.id}/board.json`);
  }
  checkEraseLayout(board, bank.eraseBlock);
  const node = platform.root.children.find((n) => {
    const compat = getProp(n, 'compatible');
    if (!compat || !readStringList(compat).includes(CFI_FLASH_COMPATIBLE)) return false;
    return rootChildRanges(platform, n).some((r) => r.address <= bank.address && bank.address + bank.size <= r.address + r.size);
  });
  const width = node && getProp(node, 'bank-width');
  if (!node || !width) {
    throw new XenError('E_XEN_DTB', `the platform device tree has no cfi-flash node with a bank-width covering ${hex(bank.address)}+${hex(bank.size)}`, 'boot a machine with NOR flash there (QEMU virt)');
  }
  // A direct-mapped DomU sees the host's memory map (its GIC at 0x08000000): the bank goes 1:1.
  return { hostAddress: bank.address, guestAddress: directMap ? bank.address : DOMU_FLASH_GUEST_ADDRESS, size: bank.size, bankWidth: readU32(width, `/${node.name} bank-width`), eraseBlock: bank.eraseBlock };
}

/**
 * The partial device tree for the DomU (Xen's docs/misc/arm/passthrough.txt):
 *
 *   / { #address-cells = <2>; #size-cells = <2>;
 *     passthrough { compatible = "simple-bus"; ranges; #address-cells = <2>; #size-cells = <2>;
 *       flash@8000000 {
 *         compatible = "cfi-flash"; bank-width = <4>;
 *         reg = <0 guest 0 size>;                      the guest's view
 *         xen,reg = <0 host 0 size 0 guest>;           what Xen maps, host → guest
 *         xen,force-assign-without-iommu;              no DMA, so no IOMMU to assign it to
 *       }; }; };
 *
 * Xen copies the node into the guest's tree without the xen,* properties.
 */
export function buildPassthroughDtb(f: PassthroughFlash, nic?: PassthroughNic): Uint8Array {
  const flash = fdtNode(`flash@${f.guestAddress.toString(16)}`, [
    stringProp('compatible', CFI_FLASH_COMPATIBLE),
    fdtProp('reg', cellsValue([0, f.guestAddress, 0, f.size], 1)),
    u32Prop('bank-width', f.bankWidth),
    fdtProp('xen,reg', cellsValue([0, f.hostAddress, 0, f.size, 0, f.guestAddress], 1)),
    fdtProp('xen,force-assign-without-iommu', new Uint8Array(0)),
  ]);
  const passthrough = fdtNode('passthrough', [
    stringProp('compatible', 'simple-bus'),
    fdtProp('ranges', new Uint8Array(0)),
    u32Prop('#address-cells', 2),
    u32Prop('#size-cells', 2),
  ], nic ? [flash, nicNode(nic)] : [flash]);
  // The NIC's interrupt-parent is the /gic placeholder, which Xen replaces by the guest's GIC.
  return encodeFdt(newFdt(fdtNode('', [u32Prop('#address-cells', 2), u32Prop('#size-cells', 2)], nic ? [gicPlaceholder(), passthrough] : [passthrough])));
}

/** The security counter an image claims, unverified (the device decides; this only seeds the floor). */
function claimedCounter(image: Uint8Array): number {
  try {
    return decodeManifest(decodeLayout(image).manifestBytes).securityCounter;
  } catch {
    return 0;
  }
}

/**
 * A factory-fresh flash file for tests and benches (`runXen({ appImage })`): the board's whole
 * flash, sparse, with the app image in slot A, slot B blank and the state initialised as
 * `signet disk` does. (No GPT or boot image: the DomU's kernel and initramfs come as modules.)
 */
export function writeFreshFlash(board: Board, appImage: Uint8Array, path: string): void {
  const layout = flashLayout(board);
  if (appImage.length > layout.slot_a.size) {
    throw new DiskError('E_DISK_TOO_LARGE', `the app image is ${appImage.length} bytes, slot_a of ${board.id} holds ${layout.slot_a.size}`, 'make the app smaller or the slot larger in board.json');
  }
  const fd = openSync(path, 'wx', 0o600);
  try {
    ftruncateSync(fd, board.flash.size);
  } finally {
    closeSync(fd);
  }
  const dev = new FileBlockDevice(path, board.flash.blockSize, true, board.flash.eraseBlockSize);
  try {
    provisionFlash(dev, layout, { slotA: appImage, securityFloor: claimedCounter(appImage) });
  } catch (e) {
    rmSync(path, { force: true });
    throw e;
  } finally {
    dev.close();
  }
}

// --- The RAM copy, for a DomU kernel without the flash drivers (Debian's armmp) ---

/** Where the boot stage finds the RAM copy (kernel args `-- --disk /signet/flash.img`). */
export const DOMU_FLASH_FILE = '/signet/flash.img';

/** The head of the flash must fit the guest's RAM twice (initrd, then its unpacked copy) with room to spare. */
const MAX_SHARE_OF_GUEST_RAM = 0.25;

/** Bytes of the flash the RAM copy holds: up to the end of the last partition the boot stage uses. */
export function domUFlashHeadBytes(board: Board): number {
  const l = flashLayout(board);
  const size = Math.max(...[l.slot_a, l.slot_b, l.state].map((p) => p.offset + p.size));
  const guestRam = (board.xen?.domUMemoryMb ?? 0) * 1024 * 1024;
  if (size > guestRam * MAX_SHARE_OF_GUEST_RAM) {
    throw new XenError('E_XEN_BOARD', `the DomU would carry ${size} bytes of flash in its ${guestRam}-byte RAM (slots and state end at ${size})`, `put slot_a, slot_b and state before the boot partition in boards/${board.id}/board.json, or raise xen.domUMemoryMb`);
  }
  return size;
}

/** The head of a flash file, as a cpio archive (`/signet/flash.img`) to append to the boot initramfs. */
export function domUFlashCpio(board: Board, path: string): Uint8Array {
  const size = domUFlashHeadBytes(board);
  const head = new Uint8Array(size);
  withDiskFile(path, (fd) => {
    let got = 0;
    while (got < size) {
      const n = readSync(fd, head, got, size - got, got);
      if (n === 0) {
        throw new DiskError('E_DISK_NOT_A_DISK', `${path} ends at ${got} bytes but the slots and state of ${board.id} end at ${size}`, `make it with \`signet disk --board ${board.id}\``);
      }
      got += n;
    }
  });
  return writeCpio([
    { type: 'dir', path: 'signet', mode: 0o755 },
    { type: 'file', path: DOMU_FLASH_FILE.slice(1), data: head, mode: 0o600 },
  ]);
}
