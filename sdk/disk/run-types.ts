/**
 * What `signet run`'s starters take and return (run-arm64.ts, run-xen.ts), in a file of their
 * own: the starters import these types, and run.ts imports the starters, so neither imports the other.
 */
import type { Board } from '../board/schema';
import type { GuestNetwork } from './network';
import type { GuestConsole } from './qemu';

/** What every starter takes. */
export interface GuestRunOptions {
  board: Board;
  disk: string;
  /** Kernel args `-- --halt`: the boot stage powers the guest off after the app. */
  halt?: boolean;
  /** kvm: QEMU loads the FIT's kernel, initramfs and device tree itself (no U-Boot). */
  direct?: boolean;
  /**
   * The FIT public-key DTB (from `signet fit --key-dtb`): U-Boot's control DTB gets it (required
   * for a U-Boot boot); direct boots check the FIT with it when it is given.
   */
  keyDtb?: Uint8Array;
  /** U-Boot's autoboot delay in seconds (default 0; tests that type commands use more). */
  bootdelay?: number;
  onOutput?: (chunk: string) => void;
  /** More QEMU options (tests: e.g. `-device loader` to put extra images in RAM). */
  extraArgs?: string[];
  /** kvm: a network card on QEMU's user-mode network, with host ports forwarded (none: no card). */
  network?: GuestNetwork;
}

/** What every starter returns: the running guest. */
export interface StartedGuest {
  guest: GuestConsole;
  mode: 'uboot' | 'direct';
  /** Removes the run's temp files (e.g. control DTB, environment, extracted images). */
  cleanup(): void;
}
