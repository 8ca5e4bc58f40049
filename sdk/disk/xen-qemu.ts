/**
 * QEMU as the Xen board: `-M virt,virtualization=on` so the CPU has EL2 for Xen, Xen given as
 * `-kernel` (QEMU's direct boot enters it in Hyp mode with the tree in r2), the tree as `-dtb`,
 * the DomU's kernel, ramdisk and partial device tree placed with `-device loader` where /chosen
 * says they are, and the board's flash file as `virt`'s second NOR bank (`-drive if=pflash,unit=1`),
 * which Xen passes through to the DomU (xen-flash.ts).
 *
 * QEMU's direct boot (hw/arm/boot.c) puts the kernel image at RAM base + 0x10000 and, with no
 * -initrd, the tree at RAM base + min(RAM / 2, 128 MiB): 0x48000000 on `virt` with 1 GiB. The
 * board's loadAddresses.fdt must say so, and the modules must stay clear of both.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Board } from '../board';
import { decodeFdt } from '../fit/fdt';
import { DiskError } from './errors';
import { machineArgs } from './qemu';
import { checkXenBoard, dtbFootprint, type XenBootPlan } from './xen';
import { checkModules, hex, memoryRanges } from './xen-dt';
import { XenError } from './xen-errors';
import { xenNetworkArgs } from './xen-net';

/** hw/arm/boot.c KERNEL_LOAD_ADDR: where QEMU copies a zImage (here, Xen) above RAM base. */
export const QEMU_KERNEL_OFFSET = 0x10000;
const MiB = 1024 * 1024;

/** Debian package holding each QEMU system emulator we use. */
const QEMU_PACKAGE: Record<string, string> = { 'qemu-system-arm': 'qemu-system-arm', 'qemu-system-aarch64': 'qemu-system-arm' };

function qemuMissing(system: string, cause?: unknown): DiskError {
  return new DiskError('E_QEMU_MISSING', `${system} is not installed`, `apt-get install ${QEMU_PACKAGE[system] ?? system}`, cause);
}

/** QEMU's own tree for the board's machine, CPU and memory (`-M ...,dumpdtb=`). */
export async function dumpQemuDtb(board: Board): Promise<Uint8Array> {
  checkXenBoard(board);
  const dir = await mkdtemp(join(tmpdir(), 'signet-dtb-'));
  const out = join(dir, 'virt.dtb');
  try {
    await new Promise<void>((resolve, reject) => {
      execFile(
        board.qemu!.system,
        [...machineArgs(board, `,dumpdtb=${out}`), '-display', 'none'],
        (error, _stdout, stderr) => {
          if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') reject(qemuMissing(board.qemu!.system, error));
          else if (error) reject(new DiskError('E_QEMU_FAILED', `${board.qemu!.system} could not dump the ${board.qemu!.machine} device tree: ${String(stderr).trim().split('\n').pop()}`, 'check the qemu section of board.json', error));
          else resolve();
        },
      );
    });
    return new Uint8Array(await readFile(out));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Where QEMU's direct boot will put the tree (RAM base + min(RAM/2, 128 MiB)). */
export function qemuDtbAddress(platformDtb: Uint8Array): number {
  const ram = memoryRanges(decodeFdt(platformDtb));
  const first = ram.reduce((a, b) => (b.address < a.address ? b : a));
  const total = ram.reduce((n, r) => n + r.size, 0);
  return first.address + Math.min(total / 2, 128 * MiB);
}

/** The plan must agree with where QEMU puts Xen and the tree. */
export function checkQemuPlacement(plan: XenBootPlan, platformDtb: Uint8Array, board: Board): void {
  const want = qemuDtbAddress(platformDtb);
  if (plan.dtb.address !== want) {
    throw new XenError('E_XEN_ADDRESS', `loadAddresses.fdt of ${board.id} is ${hex(plan.dtb.address)} but QEMU's direct boot puts the device tree at ${hex(want)}`, `set loadAddresses.fdt to "${hex(want)}"`);
  }
  const ram = memoryRanges(decodeFdt(platformDtb));
  const base = ram.reduce((a, b) => (b.address < a.address ? b : a)).address;
  checkModules(ram, [
    { what: 'Xen as QEMU loads it', m: { address: base, size: QEMU_KERNEL_OFFSET + plan.xen.image.length } },
    { what: 'the device tree', m: { address: plan.dtb.address, size: dtbFootprint(plan.dtb.image.length) } },
    { what: 'the DomU kernel', m: { address: plan.kernel.address, size: plan.kernel.image.length } },
    { what: 'the DomU ramdisk', m: { address: plan.ramdisk.address, size: plan.ramdisk.image.length } },
    ...(plan.passthrough ? [{ what: 'the DomU partial device tree', m: { address: plan.passthrough.partialDtb.address, size: plan.passthrough.partialDtb.image.length } }] : []),
    ...(plan.staticMemory ? [{ what: 'the DomU static memory (xen.staticMemory)', m: plan.staticMemory }] : []),
  ]);
}

export interface XenQemuFiles {
  xen: string;
  dtb: string;
  kernel: string;
  ramdisk: string;
  partialDtb: string;
  /** QMP socket: how the runner quits QEMU once the DomU is gone (Xen itself idles on). */
  qmpSocket: string;
}

/** A value inside a QEMU `-drive` option list: commas are doubled. */
export function qemuOptionValue(v: string): string {
  return v.replace(/,/g, ',,');
}

/** Machine and boot options; the console, display and monitor options are GuestConsole's. */
export function xenQemuArgs(board: Board, plan: XenBootPlan, f: XenQemuFiles): string[] {
  checkXenBoard(board);
  return [
    ...machineArgs(board),
    '-smp', '1',
    '-kernel', f.xen,
    '-dtb', f.dtb,
    '-device', `loader,file=${f.kernel},addr=${hex(plan.kernel.address)},force-raw=on`,
    '-device', `loader,file=${f.ramdisk},addr=${hex(plan.ramdisk.address)},force-raw=on`,
    ...(plan.passthrough ? [
      '-device', `loader,file=${f.partialDtb},addr=${hex(plan.passthrough.partialDtb.address)},force-raw=on`,
      // The guest's flash: written in place, so its state is there at the next boot.
      '-drive', `if=pflash,unit=${plan.passthrough.flash.pflashUnit},format=raw,file=${qemuOptionValue(plan.passthrough.flash.file)}`,
    ] : []),
    // The DomU's NIC (xen-net.ts): QEMU's first virtio device, on the transport Xen passes through.
    ...(plan.network ? xenNetworkArgs(plan.network.qemu) : []),
    '-qmp', `unix:${f.qmpSocket},server=on,wait=off`,
  ];
}
