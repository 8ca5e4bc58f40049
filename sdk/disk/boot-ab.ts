/**
 * A/B boot slots (opt-in: `signet disk --boot-ab`; docs/boot-state.md §A/B boot slots). The
 * board's `boot` partition becomes `boot_a`; `boot_b` (same size) and `bootenv` (64 KiB) follow
 * the board's last partition, 1 MiB aligned, so every other partition stays where it is and a
 * boot stage built for the board works on both layouts.
 *
 * U-Boot's side is a bootcmd script for stock U-Boot (Debian's 2023.01 has `env import/export -c`,
 * `setexpr`, `itest`, `virtio read/write`; it has no CONFIG_BOOTCOUNT_LIMIT and keeps its own
 * environment on NOR where `saveenv` cannot work), kept in U-Boot's environment.
 */
import { partition, type Board } from '../board';
import type { Partition } from '../board/schema';

export const BOOTENV_BYTES = 64 * 1024;
export const DEFAULT_BOOTLIMIT = 3;
const MiB = 1024 * 1024;
/** The backup GPT's 33 sectors at the end of the disk. */
const GPT_TAIL_SECTORS = 33;

export interface AbLayout {
  boot_a: { offset: number; size: number };
  boot_b: { offset: number; size: number };
  bootenv: { offset: number; size: number };
}

/** Where boot_b and bootenv go on `board`, or null when they do not fit its flash. */
export function abLayout(board: Board): AbLayout | null {
  if (!board.flash.partitions.some((p) => p.name === 'boot')) return null;
  const boot = partition(board, 'boot');
  const end = Math.max(...board.flash.partitions.map((p) => p.offset + p.size));
  const bOffset = Math.ceil(end / MiB) * MiB;
  const envOffset = Math.ceil((bOffset + boot.size) / MiB) * MiB;
  if (envOffset + BOOTENV_BYTES > board.flash.size - GPT_TAIL_SECTORS * board.flash.blockSize) return null;
  return {
    boot_a: { offset: boot.offset, size: boot.size },
    boot_b: { offset: bOffset, size: boot.size },
    bootenv: { offset: envOffset, size: BOOTENV_BYTES },
  };
}

/** The partition table of an A/B disk: the board's, `boot` renamed `boot_a`, then boot_b and bootenv. */
export function abPartitions(board: Board, ab: AbLayout): Partition[] {
  return [
    ...board.flash.partitions.map((p) => (p.name === 'boot' ? { ...p, name: 'boot_a' } : p)),
    { name: 'boot_b', ...ab.boot_b },
    { name: 'bootenv', ...ab.bootenv },
  ];
}

const hex = (n: number) => '0x' + n.toString(16);

/**
 * U-Boot's environment for an A/B disk: `bootcmd` reads both copies of the boot environment,
 * imports the valid one with the higher ab_seq (only the A/B variables), counts this boot, after
 * `bootlimit` boots of a slot that never confirmed switches to the other slot, writes the result
 * into the older copy, then loads and `bootm`s the chosen slot's FIT. A FIT that `bootm` refuses
 * resets, so it counts as a failed try too.
 */
export function abUbootEnv(board: Board, ab: AbLayout, fitAddr: number): Record<string, string> {
  const bs = board.flash.blockSize;
  const vars = 'ab_seq boot_slot bootcount bootlimit boot_good';
  // Buffers for the two copies and the one written, below the FIT.
  const m0 = fitAddr - 0x300000, m1 = fitAddr - 0x200000, mw = fitAddr - 0x100000;
  const env = hex(512);
  const slotBlocks = Math.min(ab.boot_a.size, ab.boot_b.size) / bs;
  const script = [
    'virtio scan',
    `virtio read ${hex(m0)} ${hex(ab.bootenv.offset / bs)} 1`,
    `virtio read ${hex(m1)} ${hex((ab.bootenv.offset + ab.bootenv.size / 2) / bs)} 1`,
    // Sequence numbers of the valid copies ("0" prefix: an invalid copy counts as 0).
    `setenv ab_seq; if env import -c ${hex(m0)} ${env} ab_seq; then setenv ab_q0 0\${ab_seq}; else setenv ab_q0 0; fi`,
    `setenv ab_seq; if env import -c ${hex(m1)} ${env} ab_seq; then setenv ab_q1 0\${ab_seq}; else setenv ab_q1 0; fi`,
    `setenv ab_cur ${hex(m0)}; setenv ab_next ${hex((ab.bootenv.offset + ab.bootenv.size / 2) / bs)}`,
    `if itest \${ab_q1} -gt \${ab_q0}; then setenv ab_cur ${hex(m1)}; setenv ab_next ${hex(ab.bootenv.offset / bs)}; fi`,
    // Defaults for a disk whose environment is gone: slot a, as provisioned.
    `setenv ab_seq 0; setenv boot_slot a; setenv bootcount 0; setenv bootlimit ${DEFAULT_BOOTLIMIT.toString(16)}; setenv boot_good`,
    `env import -c \${ab_cur} ${env} ${vars}`,
    'if test "${boot_slot}" != b; then setenv boot_slot a; fi',
    'setexpr bootcount 0${bootcount} + 1',
    // The altbootcmd step: a slot booted bootlimit times without a confirm gives way to the other.
    'if itest ${bootcount} -gt 0${bootlimit}; then if test ${boot_slot} = a; then setenv boot_slot b; else setenv boot_slot a; fi; setenv bootcount 1; fi',
    'setexpr ab_seq 0${ab_seq} + 1',
    `env export -c -s ${env} ${hex(mw)} ${vars}`,
    `virtio write ${hex(mw)} \${ab_next} 1`,
    `echo signet-ab: boot_slot=\${boot_slot} bootcount=\${bootcount}`,
    `if test \${boot_slot} = b; then setenv ab_blk ${hex(ab.boot_b.offset / bs)}; else setenv ab_blk ${hex(ab.boot_a.offset / bs)}; fi`,
    // Only the FIT's own blocks, not the whole slot: its header first, then `totalsize` rounded
    // up to blocks, never more than the slot holds (a header that claims more cannot make U-Boot
    // read past the slot over its own memory). No FDT header: nothing more is read, bootm refuses.
    `virtio read ${hex(fitAddr)} \${ab_blk} 1`,
    'setenv ab_cnt 0',
    `if fdt addr ${hex(fitAddr)} && fdt header get ab_size totalsize; then setexpr ab_cnt \${ab_size} + ${hex(bs - 1)}; setexpr ab_cnt \${ab_cnt} / ${hex(bs)}; fi`,
    `if itest \${ab_cnt} -gt ${hex(slotBlocks)}; then setenv ab_cnt ${hex(slotBlocks)}; fi`,
    `if itest \${ab_cnt} -gt 1; then virtio read ${hex(fitAddr)} \${ab_blk} \${ab_cnt}; fi`,
    `bootm ${hex(fitAddr)}`,
    'reset',
  ].join('; ');
  return { bootcmd: script };
}
