/**
 * Everything a Xen dom0less boot of a Signet guest needs, assembled from Debian packages, the
 * boot image and the flash; the runner (run-xen.ts) only places it in memory.
 *
 *   Xen            xen-hypervisor-4.17-armhf: /boot/xen-4.17-armhf (a zImage-style image)
 *   DomU kernel    the boot image's: the board's kernel (fetchKernel: xen-arm32's minimal zImage
 *                  built from linux-source with its kernel.config, or Debian's linux-image-armmp)
 *   DomU ramdisk   the boot image's initramfs (/init = Duktape host, /signet/boot.dukbc, the boot
 *                  stage as bytecode; gzip'd when it comes from a FIT)
 *   DomU flash     a partial device tree passing the board's NOR flash through (xen-flash.ts):
 *                  the guest reads and writes the disk image file QEMU backs the bank with;
 *                  for a kernel without the flash drivers (Debian's armmp), a RAM copy of the
 *                  flash's head appended to the ramdisk instead
 *   device tree    the platform's, with /chosen dom0less nodes (xen-dt.ts)
 *
 * The guest comes either from a disk image (`signet disk`: the FIT in its boot partition,
 * checked with the vendor's FIT key when one is given, as U-Boot would) or, for tests and
 * benches, from an app image and a root.json, with the initramfs built here the same way.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Board } from '../board';
import { fetchDeb } from '../build/debian';
import { concatBytes, decodeFdt, findNode, getProp, readString } from '../fit/fdt';
import { requiredConfKeys, verifyFit } from '../fit/fit-verify';
import { readPublicKeysFromDtb } from '../fit/keydtb';
import { buildBoardInitramfs } from './boot-image';
import { readDiskBootImage } from './disk';
import { DiskError } from './errors';
import { fetchKernel } from './kernel';
import { buildXenDtb, checkModules, hex, memoryRanges, type Dom0lessConfig } from './xen-dt';
import { XenError } from './xen-errors';
import type { GuestNetwork } from './network';
import { checkXenNetwork, passthroughNic, type PassthroughNic } from './xen-net';
import { buildBoardXen } from '../xen/build';
import { buildPassthroughDtb, DOMU_FLASH_FILE, domUFlashCpio, kernelDrivesFlash, passthroughFlash, QEMU_VIRT_PFLASH } from './xen-flash';

/** What runs in the DomU: kernel, boot initramfs and the kernel command line it was built with. */
export interface XenGuestImages {
  kernel: Uint8Array;
  initramfs: Uint8Array;
  /** The board's kernel command line (signed in the FIT when it comes from one). */
  bootargs: string;
}

export interface XenBootInput {
  board: Board;
  guest: XenGuestImages;
  /** The file holding the board's whole flash (a disk image from `signet disk`), passed through to the DomU. */
  flashFile: string;
  /** Power the guest off when the app ends (the stage's `--halt`), instead of rebooting it. */
  halt: boolean;
  /** The platform's device tree (for QEMU: its `dumpdtb` output, see xen-qemu.ts). */
  platformDtb: Uint8Array;
  /** A NIC on QEMU's user-mode network, passed through to the DomU (xen-net.ts); none without. */
  network?: GuestNetwork;
}

export interface XenBootPlan {
  xen: { image: Uint8Array };
  kernel: { image: Uint8Array; address: number; bootargs: string };
  /** `flashCopyBytes`: the RAM copy of the flash at its end (0 when the flash is passed through). */
  ramdisk: { image: Uint8Array; address: number; flashCopyBytes: number };
  /**
   * The flash passed through (xen-flash.ts): the DomU's partial device tree, and the NOR bank (the
   * file QEMU backs it with, where the host and the guest see it). Absent for a RAM copy.
   */
  passthrough?: {
    partialDtb: { image: Uint8Array; address: number };
    flash: { file: string; pflashUnit: number; hostAddress: number; guestAddress: number; size: number };
  };
  /** The tree Xen boots with and the address the platform puts it at. */
  dtb: { image: Uint8Array; address: number };
  /** The DomU's RAM as a fixed host range, mapped 1:1 (Xen built from source). */
  staticMemory?: { address: number; size: number };
  /** The NIC passed through and the user-mode network QEMU gives it. */
  network?: { nic: PassthroughNic; qemu: GuestNetwork };
  config: Dom0lessConfig;
}

/** The guest's name in /chosen; Xen makes it domain 1 and prefixes its console `(XEN) DOM1: `. */
export const DOMU_NODE = 'domU1';

/** QEMU may grow the tree it is given to twice its size while fixing it up (hw/arm/boot.c). */
export function dtbFootprint(dtbBytes: number): number {
  return 2 * dtbBytes + 0x10000;
}

function address(board: Board, key: 'kernel' | 'ramdisk' | 'fdt'): number {
  return Number.parseInt(board.loadAddresses[key], 16);
}

/** The board must be a Xen board with a QEMU profile to emulate it. */
export function checkXenBoard(board: Board): asserts board is Board & { xen: NonNullable<Board['xen']>; qemu: NonNullable<Board['qemu']> } {
  if (board.hypervisor !== 'xen' || !board.xen) {
    throw new XenError('E_XEN_BOARD', `board ${board.id} runs ${board.hypervisor}, not Xen`, 'use a Xen board such as xen-arm32');
  }
  if (!board.qemu) {
    throw new DiskError('E_BOARD_NO_QEMU', `board ${board.id} has no qemu section, so it cannot be emulated`, 'run it on the real board');
  }
}

/**
 * The hypervisor image: built from Debian's pinned source with the board's xen.config
 * (`xen.source: "debian-source"`, sdk/xen, cached), or the one in the board's Xen package
 * (e.g. /boot/xen-4.17-armhf).
 */
export async function fetchXen(board: Board): Promise<Uint8Array> {
  checkXenBoard(board);
  if (board.xen.source === 'debian-source') return (await buildBoardXen(board)).image;
  const root = await fetchDeb(board.xen.package, board.arch);
  let names: string[] = [];
  try {
    names = readdirSync(join(root, 'boot')).filter((f) => /^xen-[0-9.]+/.test(f) && !f.endsWith('.config'));
  } catch {
    // reported below
  }
  if (names.length !== 1) {
    throw new XenError('E_XEN_PACKAGE', `Debian package ${board.xen.package}:${board.arch} holds ${names.length} /boot/xen-* images, expected 1`, `set xen.package of board ${board.id} to a xen-hypervisor-* package`);
  }
  return new Uint8Array(readFileSync(join(root, 'boot', names[0]!)));
}

/** The guest for an app image: the board's kernel and a boot initramfs trusting `rootJson`. */
export async function guestForApp(board: Board, rootJson: string): Promise<XenGuestImages> {
  const kernel = await fetchKernel(board);
  const { initramfs } = await buildBoardInitramfs(board, kernel, rootJson, false, 0);
  return { kernel: kernel.kernel, initramfs, bootargs: board.kernel.cmdline ?? `console=${board.kernel.console}` };
}

/**
 * The guest in a disk image's boot partition. With `keyDtb` (U-Boot's public-key tree) the FIT
 * must verify first, as the platform stage would check it; without, it is taken as it is.
 */
export function guestFromDisk(board: Board, diskPath: string, keyDtb?: Uint8Array): XenGuestImages {
  const { fit } = readDiskBootImage(diskPath, board);
  if (keyDtb) verifyFit(fit, requiredConfKeys(readPublicKeysFromDtb(keyDtb)));
  const root = decodeFdt(fit).root;
  const data = (name: string): Uint8Array => {
    const node = findNode(root, `/images/${name}`);
    const value = node && getProp(node, 'data');
    if (!value) throw new DiskError('E_DISK_NOT_A_DISK', `the boot image in ${diskPath} has no /images/${name}`, 'rebuild the disk with `signet disk`');
    return value;
  };
  const chosen = findNode(decodeFdt(data('fdt')).root, '/chosen');
  const args = chosen && getProp(chosen, 'bootargs');
  return { kernel: data('kernel'), initramfs: data('ramdisk'), bootargs: args ? readString(args) : board.kernel.cmdline ?? '' };
}

/**
 * The DomU kernel's command line: the board's, then the boot stage's words after `--`. The stage
 * opens the board's flash device (/dev/mtdblock0, the passed-through NOR) as compiled in, or
 * `disk` (the RAM copy) when given.
 */
export function domUBootargs(bootargs: string, halt: boolean, disk?: string): string {
  if (/(^| )--( |$)/.test(bootargs)) {
    throw new XenError('E_XEN_BOARD', `the kernel command line "${bootargs}" already has "--"`, 'leave the words after "--" to Signet');
  }
  const words = [...(disk ? ['--disk', disk] : []), ...(halt ? ['--halt'] : [])];
  return words.length > 0 ? `${bootargs} -- ${words.join(' ')}` : bootargs;
}

/** The partial device tree goes after the ramdisk, on the next 64 KiB boundary. */
const MODULE_ALIGN = 0x10000;

export function prepareXenBoot(i: XenBootInput, xen: Uint8Array): XenBootPlan {
  const { board } = i;
  checkXenBoard(board);
  const passthrough = kernelDrivesFlash(board);
  const flashCopy = passthrough ? new Uint8Array(0) : domUFlashCpio(board, i.flashFile);
  const ramdisk = passthrough ? i.guest.initramfs : concatBytes([i.guest.initramfs, flashCopy]);
  const bootargs = domUBootargs(i.guest.bootargs, i.halt, passthrough ? undefined : DOMU_FLASH_FILE);
  const staticMemory = staticMemoryOf(board);
  const directMap = staticMemory !== undefined;
  if (i.network) checkXenNetwork(board);
  const platform = decodeFdt(i.platformDtb);
  const flash = passthrough ? passthroughFlash(board, platform, directMap) : undefined;
  const nic = i.network ? passthroughNic(platform) : undefined;
  const partial = flash && buildPassthroughDtb(flash, nic);
  const ramdiskAddress = address(board, 'ramdisk');
  const partialAddress = Math.ceil((ramdiskAddress + ramdisk.length) / MODULE_ALIGN) * MODULE_ALIGN;
  const domU = {
    name: DOMU_NODE,
    memoryKb: board.xen.domUMemoryMb * 1024,
    cpus: 1,
    vpl011: true,
    kernel: { address: address(board, 'kernel'), size: i.guest.kernel.length, bootargs },
    ramdisk: { address: ramdiskAddress, size: ramdisk.length },
    ...(partial ? { deviceTree: { address: partialAddress, size: partial.length } } : {}),
    ...(staticMemory ? { staticMemory, directMap } : {}),
  };
  const config: Dom0lessConfig = { xenBootargs: board.xen.bootargs ?? 'console=dtuart', domUs: [domU] };
  const dtb = buildXenDtb(i.platformDtb, config);
  // The tree itself must not be overwritten by a module either.
  const dtbAddress = address(board, 'fdt');
  checkModules(memoryRanges(decodeFdt(dtb)), [
    { what: `the device tree (at loadAddresses.fdt ${hex(dtbAddress)})`, m: { address: dtbAddress, size: dtbFootprint(dtb.length) } },
    { what: 'the DomU kernel', m: domU.kernel },
    { what: 'the DomU ramdisk', m: domU.ramdisk },
    ...(domU.deviceTree ? [{ what: 'the DomU partial device tree', m: domU.deviceTree }] : []),
    ...(staticMemory ? [{ what: 'the DomU static memory (xen.staticMemory)', m: staticMemory }] : []),
  ]);
  return {
    xen: { image: xen },
    kernel: { image: i.guest.kernel, address: domU.kernel.address, bootargs },
    ramdisk: { image: ramdisk, address: domU.ramdisk.address, flashCopyBytes: flashCopy.length },
    ...(flash && partial ? {
      passthrough: {
        partialDtb: { image: partial, address: partialAddress },
        flash: { file: i.flashFile, pflashUnit: QEMU_VIRT_PFLASH.unit, hostAddress: flash.hostAddress, guestAddress: flash.guestAddress, size: flash.size },
      },
    } : {}),
    dtb: { image: dtb, address: dtbAddress },
    ...(staticMemory ? { staticMemory } : {}),
    ...(nic && i.network ? { network: { nic, qemu: i.network } } : {}),
    config,
  };
}

/** The DomU's static, direct-mapped RAM (Xen built from source): xen.staticMemory, domUMemoryMb long. */
export function staticMemoryOf(board: Board & { xen: NonNullable<Board['xen']> }): { address: number; size: number } | undefined {
  if (board.xen.source !== 'debian-source') return undefined;
  if (!board.xen.staticMemory) throw new XenError('E_XEN_BOARD', `board ${board.id} builds Xen from source but names no xen.staticMemory`, 'set xen.staticMemory to a free 2 MiB-aligned host RAM address');
  return { address: Number.parseInt(board.xen.staticMemory, 16), size: board.xen.domUMemoryMb * 1024 * 1024 };
}
