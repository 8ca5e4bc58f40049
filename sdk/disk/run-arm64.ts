/**
 * Boots a qemu-virt-arm64 disk image in QEMU, two ways:
 *
 * - **U-Boot** (the real chain): Debian's qemu_arm64 U-Boot as firmware (`-bios`); its control
 *   DTB is QEMU's own tree plus the vendor's FIT key (`/signature/key-fit`, required = "conf");
 *   its environment, in the second pflash bank, has a bootcmd that reads the FIT from the disk's
 *   boot partition and runs `bootm`. U-Boot verifies the FIT, the kernel starts, the initramfs's
 *   boot stage verifies the app image in the active slot and runs it. On an A/B disk (`signet
 *   disk --boot-ab`) the bootcmd is the A/B script: it counts the boot in the disk's bootenv and
 *   boots the boot slot it picks (docs/boot-state.md §A/B boot slots).
 * - **direct**: QEMU loads kernel, initramfs and device tree taken out of the FIT (verified with
 *   the key when one is given). Faster; no platform stage.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeFdt, findNode, getProp, readString } from '../fit/fdt';
import { verifyFit, requiredConfKeys } from '../fit/fit-verify';
import { mergePublicKeyIntoDtb, readPublicKeysFromDtb } from '../fit/keydtb';
import { unlzma } from './compress';
import { abUbootEnv } from './boot-ab';
import { readDiskBootImage } from './disk';
import { DiskError, asSignetError } from './errors';
import { qemuNetworkArgs } from './network';
import { boardFirmware, bootControlDtb, checkQemuInstalled, dumpMachineDtb, GuestConsole, machineArgs } from './qemu';
import type { GuestRunOptions, StartedGuest } from './run-types';
import { encodeUbootEnv } from './uboot-env';

/** Debian's qemu_arm64 U-Boot: CONFIG_ENV_IS_IN_FLASH at the start of pflash bank 1. */
export const UBOOT_ENV_SIZE = 0x40000;
/** QEMU virt's pflash banks are 64 MiB each and the backing file must be exactly that. */
export const VIRT_PFLASH_BANK_BYTES = 64 * 1024 * 1024;

/** Kernel, initramfs and device tree of a boot image, and its signed command line (/chosen/bootargs). */
function fitParts(fit: Uint8Array): { kernel: Uint8Array; kernelCompression: string; ramdisk: Uint8Array; fdt: Uint8Array; bootargs: string } {
  const root = decodeFdt(fit).root;
  const image = (name: string): Uint8Array => {
    const node = findNode(root, `/images/${name}`);
    const data = node && getProp(node, 'data');
    if (!data) throw new DiskError('E_DISK_NOT_A_DISK', `the boot image has no /images/${name}`, 'rebuild the disk with `signet disk`');
    return data;
  };
  const fdt = image('fdt');
  const chosen = findNode(decodeFdt(fdt).root, '/chosen');
  const args = chosen && getProp(chosen, 'bootargs');
  const compression = getProp(findNode(root, '/images/kernel')!, 'compression');
  return { kernel: image('kernel'), kernelCompression: compression ? readString(compression) : 'none', ramdisk: image('ramdisk'), fdt, bootargs: args ? readString(args) : '' };
}

/** The FIT's kernel as QEMU's -kernel takes it: raw or gzip'd as it is, an lzma one unpacked. */
async function directKernel(parts: { kernel: Uint8Array; kernelCompression: string }): Promise<Uint8Array> {
  if (parts.kernelCompression === 'none' || parts.kernelCompression === 'gzip') return parts.kernel;
  if (parts.kernelCompression === 'lzma') return unlzma(parts.kernel);
  throw new DiskError('E_DISK_NOT_A_DISK', `the boot image's kernel is compressed "${parts.kernelCompression}", which --direct cannot hand to QEMU`, 'rebuild the disk with `signet disk`');
}

const hex = (n: number | bigint) => '0x' + n.toString(16);

/**
 * The board's watchdog: QEMU's i6300esb on the virt machine's PCI bus, which /init opens and
 * feeds from its event loop (bootloader/native/host.c; docs/boot-state.md "A hang is a failure
 * too"). When it expires QEMU resets the guest (`watchdog=reset`, also QEMU 7.2's default, said
 * here so no default can change it); with -no-reboot that reset ends the run like any other.
 */
export const WATCHDOG_QEMU_ARGS = ['-device', 'i6300esb', '-action', 'watchdog=reset'];

export async function startArm64(o: GuestRunOptions): Promise<StartedGuest> {
  try {
    const system = checkQemuInstalled(o.board);
    const { fit, boot, ab } = readDiskBootImage(o.disk, o.board);
    if (ab && (o.direct || o.halt)) {
      throw new DiskError('E_RUN_AB', `${o.direct ? '--direct' : '--halt'} cannot boot an A/B disk: only U-Boot picks its boot slot, and the slot's FIT holds the signed command line`, 'boot it through U-Boot, and build the disk with --app-test-mode to power off after the app');
    }
    const parts = fitParts(fit);
    const bootargs = o.halt ? `${parts.bootargs} -- --halt` : parts.bootargs;
    const keys = o.keyDtb ? readPublicKeysFromDtb(o.keyDtb) : [];
    const work = mkdtempSync(join(tmpdir(), 'signet-run-'));
    const cleanup = () => rmSync(work, { recursive: true, force: true });
    const disk = ['-drive', `if=none,id=flash,format=raw,file=${o.disk}`, '-device', 'virtio-blk-device,drive=flash'];
    const net = o.network ? qemuNetworkArgs(o.network) : [];
    try {
      let args: string[];
      let mode: StartedGuest['mode'];
      if (o.direct) {
        mode = 'direct';
        if (keys.length) verifyFit(fit, requiredConfKeys(keys)); // same decision U-Boot would make, fail closed
        const file = (name: string, bytes: Uint8Array) => {
          writeFileSync(join(work, name), bytes);
          return join(work, name);
        };
        args = [
          ...machineArgs(o.board),
          '-kernel', file('Image', await directKernel(parts)),
          '-initrd', file('initramfs.cpio', parts.ramdisk),
          '-dtb', file('board.dtb', parts.fdt),
          '-append', bootargs,
          ...disk,
          ...net,
          ...WATCHDOG_QEMU_ARGS,
          ...(o.extraArgs ?? []),
          '-no-reboot',
        ];
      } else {
        mode = 'uboot';
        if (!keys.length) {
          throw new DiskError('E_FIT_KEY', 'booting through U-Boot needs the FIT public key for its control DTB', 'pass --key-dtb (from `signet fit --key-dtb`) or --keys, or use --direct');
        }
        const fw = boardFirmware(o.board);
        let control = bootControlDtb(await dumpMachineDtb(o.board));
        for (const k of keys) control = mergePublicKeyIntoDtb(control, k.publicKey, k.keyName);
        writeFileSync(join(work, 'u-boot.dtb'), control);
        const bs = o.board.flash.blockSize;
        const fitAddr = o.board.loadAddresses.fit;
        // An A/B disk: U-Boot's A/B bootcmd (sdk/disk/boot-ab.ts) counts the boot in the disk's
        // bootenv, falls back after bootlimit tries and boots the slot it picked.
        const vars: Record<string, string> = {
          bootdelay: String(o.bootdelay ?? 0),
          ...(ab
            ? abUbootEnv(o.board, ab, Number(o.board.serial?.loadAddress ?? fitAddr))
            : { bootcmd: `virtio scan; virtio read ${fitAddr} ${hex(boot.offset / bs)} ${hex(Math.ceil(fit.length / bs))}; bootm ${fitAddr}` }),
        };
        // Only to add `-- --halt`: otherwise the kernel keeps the command line signed in the FIT.
        if (o.halt) vars.bootargs = bootargs;
        const env = new Uint8Array(VIRT_PFLASH_BANK_BYTES);
        env.fill(0xff); // erased NOR flash
        env.set(encodeUbootEnv(vars, UBOOT_ENV_SIZE), 0);
        writeFileSync(join(work, 'pflash1.img'), env);
        args = [
          ...machineArgs(o.board),
          '-bios', fw,
          '-dtb', join(work, 'u-boot.dtb'),
          '-drive', `if=pflash,unit=1,format=raw,file=${join(work, 'pflash1.img')}`,
          ...disk,
          ...net,
          ...WATCHDOG_QEMU_ARGS,
          ...(o.extraArgs ?? []),
          '-no-reboot',
        ];
      }
      const guest = await GuestConsole.start({ system, args, onOutput: o.onOutput });
      return { guest, mode, cleanup };
    } catch (e) {
      cleanup();
      throw e;
    }
  } catch (e) {
    throw asSignetError(e);
  }
}
