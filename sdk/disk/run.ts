/**
 * `signet run`: boot a disk image the way its board boots, with the guest's console relayed to
 * the caller. Dispatches on board.hypervisor to a starter that returns a running guest:
 *
 *   kvm  → run-arm64.ts startArm64 (QEMU virt: U-Boot verified boot, or --direct)
 *   xen  → run-xen.ts startXen (Xen dom0less under QEMU, the guest as a DomU; the Xen/arm32 work)
 */
import type { Hypervisor } from '../board/schema';
import { DiskError } from './errors';
import type { GuestRunOptions, StartedGuest } from './run-types';

export type { GuestRunOptions, StartedGuest } from './run-types';

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
