/**
 * Xen/arm32 as a first-class target (issue 14), on real Xen 4.17 under qemu-system-arm (TCG:
 * times are for comparing runs on one machine, not for a device).
 *
 * xen.state_persists        1 when a security floor raised by a confirmed update survives a Xen
 *                           reboot and the older image is then refused (tests/helpers/xen-persist.ts:
 *                           the DomU's flash is QEMU's NOR bank backed by the disk file, passed
 *                           through by Xen), else 0
 * xen.control_domain_bytes  what a control domain adds to the image: 0, there is none (the flash is
 *                           passed through to the dom0less DomU, docs/xen.md)
 * xen.boot_trial_ms         boot 1 of that scenario, QEMU start to QEMU exit (trial, confirm, halt)
 * xen.boot_refused_ms       boot 2, QEMU start to QEMU exit (both slots refused, halt)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBoard } from '../sdk/board';
import { statePersisted, xenPersistScenario } from '../tests/helpers/xen-persist';
import type { Figures } from './_lib';

export async function run(): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), 'signet-bench-xen-'));
  try {
    const r = await xenPersistScenario(loadBoard('xen-arm32'), dir);
    return {
      state_persists: { value: statePersisted(r) ? 1 : 0, unit: 'bool' },
      control_domain_bytes: { value: 0, unit: 'bytes' },
      boot_trial_ms: { value: Math.round(r.first.ms), unit: 'ms' },
      boot_refused_ms: { value: Math.round(r.second.ms), unit: 'ms' },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
