// A hang is a failure too (issue 13), on a real qemu-virt-arm64 guest booted with the product's
// runner (`signet run`: Debian's U-Boot verifying the FIT and running the A/B bootcmd of a `signet
// disk --boot-ab` disk, QEMU's i6300esb watchdog, -no-reboot so a reset ends the run and the test
// powers the board on again, as the reset would).
//
// An app that hangs (built with `signet build`) is staged in app slot B with the boot stage's
// install API (what the agent calls), a trial of one boot. It serves for longer than the
// watchdog's timeout, so the event loop feeds the watchdog, then loops forever in a handler: the
// feeding stops and the watchdog resets the guest. That reset is a failed try in both counters:
// U-Boot counts boot_a's second boot (a2: the stage confirms a boot slot only when the app
// confirms), and the stage falls back to app slot A, whose app confirms: boot_a is confirmed after
// 2 tries and the bootenv is settled on slot a. A watchdog that is not fed resets during the 40 s
// the app serves; one that is missing never resets (the run is stopped and `ended` says so).
// (The panicking boot image, through the device's own agent: tests/device-boot-agent-failures.)
//
// Timeouts are liveness bounds, not assertions.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BootEnvVars } from '../bootloader/src/bootenv';
import { loadBoard } from '../sdk/board';
import { abLayout } from '../sdk/disk/boot-ab';
import { expectOneLineError, ROOT, signet } from './helpers/cli';
import { powerOn, type PowerOn } from './helpers/device-run';
import { readDiskBootEnv, stageAppOnDisk } from './helpers/device-stage';

const board = loadBoard('qemu-virt-arm64');
const available = existsSync(board.qemu!.firmware!) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
/** Liveness bound of one boot; a hang is reset after the watchdog's 30 s (bootloader/native/host.c). */
const BOOT_LIMIT = 420_000;
/** How long the hanging service serves before it hangs: longer than the watchdog's timeout. */
const ALIVE_S = 40;
/** A hung guest still running this long after it hung has no watchdog that works (30 s + margin). */
const NO_RESET_AFTER_MS = 150_000;

/** A service whose loop turns for ALIVE_S seconds (feeding the watchdog), then never returns to it. */
const HANG_APP = `import { log, timers } from 'signet/runtime';

let seconds = 0;
const t = timers.setInterval(function () {
  seconds += 5;
  log('hang-app: alive ' + seconds + ' s');
  if (seconds >= ${ALIVE_S}) {
    timers.clearInterval(t);
    log('hang-app: hanging');
    for (;;) { /* never returns to the event loop */ }
  }
}, 5000);
`;

let work: string;
const at = (p: string) => join(work, p);
const ok = (args: string[], timeout = 600_000) => {
  const r = signet(args, { cwd: work, timeout });
  if (r.code !== 0) throw new Error(`signet ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
};
const picks = (c: string) => [...c.matchAll(/signet-ab: boot_slot=([ab]) bootcount=(\w+)/g)].map((m) => `${m[1]}${m[2]}`);

describe.skipIf(!available)('an app that hangs in its trial: the watchdog resets the guest, and the reset is a failed try', () => {
  const ab = abLayout(board)!;
  const runs: PowerOn[] = [];
  let staged: string[] = [];
  let before: BootEnvVars | null = null;
  let afterAll_: BootEnvVars | null = null;

  beforeAll(async () => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'device-failures-'));
    ok(['keys', 'init', '--dir', at('keys')]);
    ok(['build', '--project', join(ROOT, 'examples/hello'), '--version', '1.2.0', '--security-counter', '3', '--keys', at('keys'), '--out', at('hello.simg'), '--no-typecheck']);
    mkdirSync(at('hang/src'), { recursive: true });
    writeFileSync(at('hang/signet.json'), JSON.stringify({ name: 'hang', board: board.id, entry: 'src/main.ts', assets: [] }));
    writeFileSync(at('hang/src/main.ts'), HANG_APP);
    ok(['build', '--project', at('hang'), '--version', '1.3.0', '--security-counter', '4', '--keys', at('keys'), '--out', at('hang.simg'), '--no-typecheck']);
    ok(['disk', at('hello.simg'), '--board', board.id, '--keys', at('keys'), '--boot-ab', '--app-test-mode',
      '--boot-version', '1.0.0', '--boot-security-counter', '1', '--out', at('disk.img'), '--key-dtb', at('pub.dtb')]);
    before = readDiskBootEnv(at('disk.img'), board, ab);
    staged = stageAppOnDisk(at('disk.img'), board, at('keys/root.json'), new Uint8Array(readFileSync(at('hang.simg'))), 1);
    const args = [at('disk.img'), '--board', board.id, '--key-dtb', at('pub.dtb')];
    // Power on until the guest powers itself off (boot[HALT]); a watchdog reset ends a run.
    let hangingSince = 0;
    for (let i = 0; i < 4 && !runs.some((r) => r.console.includes('boot[HALT]')); i++) {
      runs.push(await powerOn(args, {
        limitMs: BOOT_LIMIT,
        label: `power-on ${i + 1}`,
        // Only when the watchdog is missing: a hung guest that nothing resets is stopped here.
        until: (c) => {
          if (!c.includes('hang-app: hanging')) return false;
          hangingSince ||= Date.now();
          return Date.now() - hangingSince > NO_RESET_AFTER_MS;
        },
      }));
      hangingSince = 0;
      if (runs[runs.length - 1].ended !== 'exited') break;
    }
    afterAll_ = readDiskBootEnv(at('disk.img'), board, ab);
  }, 5 * BOOT_LIMIT);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('refuses to boot an A/B disk without U-Boot (--direct) or with a command line of its own (--halt), changing nothing', () => {
    const disk = readFileSync(at('disk.img'));
    expectOneLineError(signet(['run', at('disk.img'), '--board', board.id, '--direct'], { cwd: work }), 'E_RUN_AB');
    expectOneLineError(signet(['run', at('disk.img'), '--board', board.id, '--key-dtb', at('pub.dtb'), '--halt'], { cwd: work }), 'E_RUN_AB');
    expect(readFileSync(at('disk.img')).equals(disk)).toBe(true);
  });

  it('the factory boot environment is settled on boot_a, and the app update waits for its trial in slot B', () => {
    expect(before).toMatchObject({ boot_slot: 'a', bootcount: '0', boot_good: 'a', bootlimit: '3' });
    expect(staged).toEqual([expect.stringMatching(/^boot\[STAGE-WRITE\] slot=b bytes=\d+$/), 'boot[STAGED] slot=b version=1.3.0 tries=1']);
  });

  it('the app trial feeds the watchdog past its timeout, hangs, and the watchdog resets the guest', () => {
    const hung = runs[0].console;
    expect(picks(hung)).toEqual(['a1']);
    expect(hung).toContain('host[WATCHDOG] device=/dev/watchdog timeout_s=30 feed_ms=5000');
    expect(hung).toContain('boot[TRIAL] slot=b version=1.3.0 tries=0');
    expect(hung).toContain(`hang-app: alive ${ALIVE_S} s`);
    expect(hung).toContain('hang-app: hanging');
    expect(runs[0].ended).toBe('exited');
    // Nothing in the guest ended it: no halt, no panic, no reboot(2); the watchdog's reset did.
    expect(hung.slice(hung.indexOf('hang-app: hanging'))).not.toMatch(/boot\[|Kernel panic|reboot:/);
  });

  it('the reset is a failed try for U-Boot and for the app trial: app slot A runs, confirms, and boot_a is confirmed', () => {
    expect(runs).toHaveLength(2);
    const last = runs[1].console;
    expect(picks(last)).toEqual(['a2']);
    expect(last).toContain('boot[FALLBACK] slot=b reason=E_TRIAL_EXHAUSTED');
    expect(last).toContain('boot[OK] slot=a version=1.2.0');
    expect(last).toContain('hello from signet');
    expect(last).toContain('boot[BOOT-CONFIRM] slot=a tries=2');
    expect(last).toContain('boot[HALT]');
    expect(afterAll_).toMatchObject({ boot_slot: 'a', bootcount: '0', boot_good: 'a' });
  });
});
