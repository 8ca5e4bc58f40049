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
 * xen.serves                1 when examples/router-admin on the DomU (Xen built from source,
 *                           direct-mapped, its virtio-mmio NIC passed through) answers
 *                           GET /api/status over HTTPS through a forwarded 127.0.0.1 port, the
 *                           certificate checked against the vendor CA (tests/helpers/xen-serve.ts), else 0
 * xen.boot_to_https_ms      QEMU start to that first HTTPS answer
 * xen.ota_confirmed         1 when the DomU's own agent updates its app from a real signet server
 *                           on the host (1.0.0 → 1.1.0: check-in via 10.0.2.2, download, stage
 *                           into slot B, reboot, trial boot with the same disk file, confirm) and
 *                           the server shows the device confirmed (tests/helpers/xen-ota.ts), else 0
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBoard } from '../sdk/board';
import { statePersisted, xenPersistScenario } from '../tests/helpers/xen-persist';
import { xenServeScenario } from '../tests/helpers/xen-serve';
import { XenOtaWorld } from '../tests/helpers/xen-ota';
import type { Figures } from './_lib';

export async function run(): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), 'signet-bench-xen-'));
  try {
    const board = loadBoard('xen-arm32');
    mkdirSync(join(dir, 'persist'));
    const r = await xenPersistScenario(board, join(dir, 'persist'));
    const serveDir = join(dir, 'serve');
    mkdirSync(serveDir);
    const s = await xenServeScenario(board, serveDir);
    const served = s.answer?.status === 200 && JSON.parse(s.answer.body).board === board.id;
    const ota = new XenOtaWorld(board, join(dir, 'ota'));
    let otaConfirmed = false;
    try {
      await ota.prepare();
      otaConfirmed = (await ota.update(900_000)).confirmed;
    } catch (e) {
      process.stderr.write(`xen.ota_confirmed: ${(e as Error).message.slice(0, 2000)}\n`);
    } finally {
      ota.close();
    }
    return {
      ota_confirmed: { value: otaConfirmed ? 1 : 0, unit: 'bool' },
      serves: { value: served ? 1 : 0, unit: 'bool' },
      ...(served && s.bootToHttpsMs !== undefined ? { boot_to_https_ms: { value: Math.round(s.bootToHttpsMs), unit: 'ms' } } : {}),
      state_persists: { value: statePersisted(r) ? 1 : 0, unit: 'bool' },
      control_domain_bytes: { value: 0, unit: 'bytes' },
      boot_trial_ms: { value: Math.round(r.first.ms), unit: 'ms' },
      boot_refused_ms: { value: Math.round(r.second.ms), unit: 'ms' },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
