/**
 * `signet run`: boot a disk image the way its board boots, with the guest's console relayed to
 * the caller. Dispatches on board.hypervisor to a starter that returns a running guest:
 *
 *   kvm  → run-arm64.ts startArm64 (QEMU virt: U-Boot verified boot, or --direct)
 *   xen  → run-xen.ts startXen (Xen dom0less under QEMU, the guest as a DomU; the Xen/arm32 work)
 */
import type { Board, Hypervisor } from '../board/schema';
import { DiskError } from './errors';
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
}

/** What every starter returns: the running guest. */
export interface StartedGuest {
  guest: GuestConsole;
  mode: 'uboot' | 'direct';
  /** Removes the run's temp files (e.g. control DTB, environment, extracted images). */
  cleanup(): void;
}

type Starter = (o: GuestRunOptions) => Promise<StartedGuest>;

const STARTERS: Record<Hypervisor, () => Promise<Starter>> = {
  kvm: async () => (await import('./run-arm64')).startArm64,
  xen: async () => (await import('./run-xen')).startXen,
};

export async function startGuest(o: GuestRunOptions): Promise<StartedGuest> {
  const starter = STARTERS[o.board.hypervisor];
  if (!starter) {
    throw new DiskError('E_HYPERVISOR', `signet run cannot boot ${String(o.board.hypervisor)} boards like ${o.board.id}`, 'boot a kvm or xen board');
  }
  return (await starter())(o);
}

export interface RunResult {
  mode: StartedGuest['mode'];
  exitCode: number | null;
  transcript: string;
}

/**
 * Boots and waits until QEMU exits (the guest powered off; QEMU runs with -no-reboot, so a
 * reboot also ends it). `timeoutMs` bounds the wait; `input` receives a function that types
 * into the console (the CLI hooks the terminal to it).
 */
export async function runDisk(
  o: GuestRunOptions & { timeoutMs?: number; input?: (send: (text: string) => void, stop: () => void) => void; onStarted?: (mode: StartedGuest['mode']) => void },
): Promise<RunResult> {
  const started = await startGuest(o);
  const guest = started.guest;
  try {
    o.onStarted?.(started.mode);
    o.input?.((t) => guest.send(t), () => void guest.close());
    const exitCode = await guest.waitExit(o.timeoutMs);
    return { mode: started.mode, exitCode, transcript: guest.transcript };
  } finally {
    await guest.close();
    started.cleanup();
  }
}
