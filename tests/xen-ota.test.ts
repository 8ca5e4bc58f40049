// The OTA agent on a Xen/arm32 DomU, for real (issue 14): a factory xen-arm32 disk (a service at
// 1.0.0), a real `signet server` on 127.0.0.1 with 1.1.0 published and a rollout created from
// outside (tests/helpers/xen-ota.ts). The DomU, booted by Xen 4.17 with QEMU's virtio-net passed
// through, checks in via 10.0.2.2 with its client certificate, downloads 1.1.0, verifies it and
// writes it into app slot B on the NOR bank (mtdblock, erase blocks), arms the trial and reboots;
// the test powers the board on again with the same disk file (what a reset does), the boot stage
// trial-boots slot B, the app confirms, and the server shows the device confirmed. Two boots.
// Before that, on another copy of the factory disk: the power is cut (SIGKILL of QEMU) when the
// stage has printed boot[STAGE-WRITE] and the first programmed bytes of slot B are on the flash file
// (1.1.0 carries 2 MiB of padding, so its write spans erase blocks; the test checks slot B was left
// half-written), and powered on again the device boots the verified old slot. Two more boots.
//
// Timeouts are liveness bounds, not assertions.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBoard } from '../sdk/board';
import { ROOT } from './helpers/cli';
import { XenOtaWorld, type XenOtaRun } from './helpers/xen-ota';

const board = loadBoard('xen-arm32');
const available = spawnSync('sh', ['-c', 'command -v qemu-system-arm']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const BOOT_TIMEOUT = 900_000; // TCG on a loaded 2-core machine; a liveness bound only

describe.skipIf(!available)('a Xen/arm32 DomU updates its app over the air (1.0.0 → 1.1.0)', () => {
  let world: XenOtaWorld;
  let run: XenOtaRun;
  let cut: { cut: string; after: string; slotB: string };

  beforeAll(async () => {
    mkdirSync(cacheRoot, { recursive: true });
    world = new XenOtaWorld(board, mkdtempSync(join(cacheRoot, 'xen-ota-')));
    await world.prepare();
    cut = await world.powerCutDuringStage(BOOT_TIMEOUT);
    run = await world.update(BOOT_TIMEOUT);
  }, 5 * BOOT_TIMEOUT);

  afterAll(() => {
    world?.close();
    if (world) rmSync(world.dir, { recursive: true, force: true });
  });

  it('boots the factory image, checks in with its certificate over the passed-through NIC, verifies and stages 1.1.0 into slot B, and reboots', () => {
    const c = run.factory;
    expect(c).toContain('boot[OK] slot=a version=1.0.0');
    expect(c).toMatch(/ota\[AGENT\] server=https:\/\/10\.0\.2\.2:\d+/);
    expect(c).toMatch(/ota\[OFFER\] target=xen-arm32\/\S+-1\.1\.0\.simg version=1\.1\.0/);
    expect(c).toMatch(/boot\[STAGED\] slot=b version=1\.1\.0/);
    expect(c).toMatch(/ota\[REBOOT\] slot=b version=1\.1\.0/);
    expect(c).not.toMatch(/host\[ERROR\]|ota\[(DISABLED|REFUSED)\]|boot\[RECOVERY\]/);
  });

  it('trial-boots 1.1.0 from slot B after the reboot, the app confirms, and the server shows the device confirmed', () => {
    const c = run.trial;
    expect(c).toContain('boot[TRIAL] slot=b version=1.1.0');
    expect(c).toContain('boot[CONFIRM] slot=b version=1.1.0 floor=2');
    expect(c).toMatch(/ota\[REPORT\] status=confirmed target=\S+-1\.1\.0\.simg/);
    expect(c).not.toMatch(/host\[ERROR\]|ota\[(DISABLED|REFUSED)\]|boot\[RECOVERY\]/);
    expect(run.statuses).toHaveLength(1);
    expect(run.statuses[0]).toMatchObject({ state: 'active', counts: { confirmed: 1, failed: 0 } });
    expect(run.confirmed).toBe(true);
  });

  it('a power cut during the app-slot write (QEMU killed at boot[STAGE-WRITE]) leaves a device that boots the verified old slot', () => {
    expect(cut.cut).toMatch(/boot\[STAGE-WRITE\] slot=b bytes=\d+/);
    expect(cut.cut).not.toContain('boot[STAGED]'); // the cut came before the trial was armed
    expect(cut.slotB).toBe('partial'); // the cut landed inside the write: slot B half-written on the flash
    expect(cut.after).toContain('boot[OK] slot=a version=1.0.0');
    expect(cut.after).not.toMatch(/boot\[(TRIAL|RECOVERY)\]|host\[ERROR\]/);
  });
});
