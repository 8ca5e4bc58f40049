// The device's own agent updating its boot image when things go wrong (issue 13), on a real
// qemu-virt-arm64 guest (`signet run`: Debian's U-Boot running the A/B bootcmd of a `signet disk
// --boot-ab` disk, -no-reboot: a reset or a power cut ends a run and the test powers the board on
// again) and a real `signet server` (SQLite, HTTPS with mutual TLS on 127.0.0.1; the guest dials
// 10.0.2.2). Only `signet publish` and `signet rollout create` are run from outside the guest.
//
//  1. Power cut during the boot-slot write: a boot-image rollout (2.0.0); on each power-on the
//     agent checks in, downloads, verifies and writes boot_b; QEMU is killed with SIGKILL when the
//     console shows the chosen point of the write (its start, chunks spread over the slot, and
//     just after the arming write), POINTS points in all, each the next power-on's. Every restart
//     must boot a boot slot U-Boot verified (FIT signature) and a verified app slot: boot_a and
//     app 1.2.0 while the write was cut before the arming write (the agent then writes it again),
//     boot_b (2.0.0, trial, confirmed) after it. The last restart completes the update.
//  2. A properly signed boot image whose kernel panics (3.0.0: its signed command line names an
//     rdinit that does not exist, panic=-1): the agent writes it into boot_a and arms it; U-Boot
//     tries it bootlimit times, each a panic and a reset, then falls back to boot_b (2.0.0); the
//     agent reports `failed` E_BOOT_TRIAL_EXHAUSTED and the rollout halts at its threshold.
//
// Timeouts are liveness bounds, not assertions.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBoard } from '../sdk/board';
import { abLayout } from '../sdk/disk/boot-ab';
import { buildBootImage } from '../sdk/disk/boot-image';
import { ROOT } from './helpers/cli';
import { abPicks, bootWriteCutSweep, brokenRun, restartVerified, type CutRun } from './helpers/device-powercut';
import { powerOn, type PowerOn } from './helpers/device-run';
import { readDiskBootEnv } from './helpers/device-stage';
import { startDeviceWorld, type DeviceWorld } from './helpers/device-world';

const board = loadBoard('qemu-virt-arm64');
const available = existsSync(board.qemu!.firmware!) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const BOOT_LIMIT = 420_000; // one power-on on a loaded 2-core machine; a liveness bound only
const DEVICE = 'dev-cut-01';
/** Cut points over the boot-slot write: its start, chunks spread over it, and after the arming write. */
const POINTS = 10;

let work: string;
let world: DeviceWorld | undefined;
let w: DeviceWorld;
type RolloutStatus = ReturnType<DeviceWorld['rollouts']>[number];

beforeAll(async () => {
  mkdirSync(cacheRoot, { recursive: true });
  work = mkdtempSync(join(cacheRoot, 'device-boot-failures-'));
  w = world = await startDeviceWorld(work, board, DEVICE);
  w.signet(['fit', '--board', board.id, '--keys', w.at('keys'), '--out', w.at('boot-2.0.0.itb'), '--version', '2.0.0', '--security-counter', '2']);
  // Signed like any boot image of this board; its kernel finds no init and panics (panic=-1: reset).
  const bad = await buildBootImage({
    board: { ...board, kernel: { ...board.kernel, cmdline: 'console=ttyAMA0 panic=-1 rdinit=/signet-none' } },
    keysDir: w.at('keys'), release: { version: '3.0.0', securityCounter: 3 },
  });
  writeFileSync(w.at('boot-3.0.0.itb'), bad.fit);
}, 1_200_000);

afterAll(() => {
  world?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!available)('power cut during the boot-slot write, in QEMU', () => {
  /** Power-on i: the console, and the cut it ended with (none for the last). */
  let runs: CutRun[] = [];
  let chunks = 0;
  let finalStatus: RolloutStatus[] = [];

  beforeAll(async () => {
    w.signet(['publish', w.at('boot-2.0.0.itb'), '--server', w.url, '--keys', w.at('keys'), '--admin', w.at('admin')]);
    w.signet(['rollout', 'create', '--board', board.id, '--boot-version', '2.0.0', '--percent', '100', '--halt-failure-rate', '0.5', '--server', w.url, '--admin', w.at('admin')]);
    let asked = 0;
    const sweep = await bootWriteCutSweep({
      runArgs: w.runArgs, points: POINTS, limitMs: BOOT_LIMIT,
      // The last restart: the trial of boot_b, confirmed; until the server has it.
      done: (c) => {
        if (!/ota\[REPORT\] status=confirmed/.test(c) || Date.now() - asked < 2000) return false;
        asked = Date.now();
        finalStatus = w.rollouts();
        return finalStatus.some((s) => s.counts.confirmed === 1);
      },
    });
    runs = sweep.runs;
    chunks = sweep.chunks;
  }, (POINTS + 2) * BOOT_LIMIT);

  it(`cuts the power at ${POINTS} points spread over the write`, () => {
    expect(runs.slice(0, POINTS).map((r) => r.ended)).toEqual(Array(POINTS).fill('cut'));
    expect(chunks).toBeGreaterThanOrEqual(POINTS);
    expect(new Set(runs.slice(0, POINTS).map((r) => r.point)).size).toBe(POINTS);
  });

  it('every restart boots a boot slot U-Boot verified and a verified app slot', () => {
    for (let k = 1; k <= POINTS; k++) {
      const c = runs[k].console;
      const afterArming = runs[k - 1].point === 'armed';
      expect(c, `restart after the cut at ${runs[k - 1].point}`).toMatch(/sha256,rsa2048:fit\+ OK/);
      expect(abPicks(c), `restart after the cut at ${runs[k - 1].point}`).toEqual([afterArming ? 'b1' : 'a1']);
      expect(restartVerified(c, afterArming)).toBe(true);
      expect(c).toContain(afterArming ? 'boot[BOOT-IMAGE] version=2.0.0 counter=2' : 'boot[BOOT-IMAGE] version=1.0.0 counter=1');
      expect(c).toContain('boot[OK] slot=a version=1.2.0');
      expect(c).toContain('hello from signet');
      expect(c).not.toMatch(/boot\[(RECOVERY|FALLBACK)\]|Kernel panic/);
    }
    // Cut before the arming write, the agent wrote the slot again on the next power-on.
    for (let k = 1; k < POINTS; k++) expect(runs[k].console).toContain('ota[BOOT-WRITE] start slot=b');
  });

  it('after the last restart the device runs boot image 2.0.0 from boot_b, confirmed, and the server shows it', () => {
    const last = runs[POINTS].console;
    expect(last).toContain('boot[BOOT-CONFIRM] slot=b tries=1');
    expect(finalStatus).toEqual([expect.objectContaining({ state: 'active', counts: expect.objectContaining({ confirmed: 1, failed: 0 }) })]);
    expect(readDiskBootEnv(w.at('disk.img'), board, abLayout(board)!)).toMatchObject({ boot_slot: 'b', bootcount: '0', boot_good: 'b' });
  });
});

describe.skipIf(!available)('a boot image whose kernel panics: U-Boot falls back, the device reports failed, the rollout halts', () => {
  const runs: PowerOn[] = [];
  let status: RolloutStatus[] = [];

  beforeAll(async () => {
    w.signet(['publish', w.at('boot-3.0.0.itb'), '--server', w.url, '--keys', w.at('keys'), '--admin', w.at('admin')]);
    w.signet(['rollout', 'create', '--board', board.id, '--boot-version', '3.0.0', '--percent', '100', '--halt-failure-rate', '0.5', '--min-devices', '1',
      '--server', w.url, '--admin', w.at('admin')]);
    let asked = 0;
    for (let i = 0; i < 6; i++) {
      const r = await powerOn(w.runArgs, {
        limitMs: BOOT_LIMIT,
        label: `power-on ${i + 1}`,
        until: (c) => {
          if (brokenRun(c)) return true;
          if (!/ota\[REPORT\] status=failed/.test(c) || Date.now() - asked < 2000) return false;
          asked = Date.now();
          status = w.rollouts();
          return status.some((s) => s.target.endsWith('boot-3.0.0.itb') && s.state === 'halted');
        },
      });
      runs.push(r);
      if (r.ended !== 'exited') break;
    }
  }, 7 * BOOT_LIMIT);

  it('the agent writes 3.0.0 into boot_a, arms it and reboots; U-Boot tries it bootlimit times, each a panic', () => {
    expect(runs[0].console).toContain('ota[BOOT-ARMED] slot=a version=3.0.0');
    expect(runs.slice(1, 4).map((r) => abPicks(r.console))).toEqual([['a1'], ['a2'], ['a3']]);
    for (const r of runs.slice(1, 4)) {
      expect(r.console).toMatch(/sha256,rsa2048:fit\+ OK/); // the signature is good: it is the kernel that fails
      expect(r.console).toContain('Kernel panic');
    }
  });

  it('U-Boot falls back to boot_b (2.0.0), the device reports failed E_BOOT_TRIAL_EXHAUSTED, and the rollout halts', () => {
    expect(runs).toHaveLength(5);
    const last = runs[4];
    expect(last.ended).toBe('until');
    expect(abPicks(last.console)).toEqual(['b1']);
    expect(last.console).toContain('boot[BOOT-IMAGE] version=2.0.0 counter=2');
    expect(last.console).toContain('boot[OK] slot=a version=1.2.0');
    expect(last.console).toMatch(/ota\[REPORT\] status=failed target=\S+boot-3\.0\.0\.itb code=E_BOOT_TRIAL_EXHAUSTED/);
    const boot3 = status.find((s) => s.target.endsWith('boot-3.0.0.itb'));
    expect(boot3).toMatchObject({ state: 'halted', counts: expect.objectContaining({ failed: 1, confirmed: 0 }) });
  });
});
