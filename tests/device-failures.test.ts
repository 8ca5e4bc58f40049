// Issue 13's failure paths on a real qemu-virt-arm64 guest, booted with the product's runner
// (`signet run`: Debian's U-Boot verifying the FIT, QEMU's i6300esb watchdog, -no-reboot so a
// reset ends the run and the test powers the board on again, as a reset would).
//
// A hang is a failure too: a service that hangs (an app built with `signet build` whose event
// loop turns for longer than the watchdog's timeout, then loops forever in a handler) stops the
// feeding; the watchdog resets the guest; the reset counts as a failed try of the app trial and
// the next boot falls back to the previous app slot. The app stays alive past the timeout
// first, so a watchdog that is not fed fails this test as surely as a missing one.
//
// Timeouts are liveness bounds, not assertions.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBoard } from '../sdk/board';
import { ROOT, signet } from './helpers/cli';
import { powerOn } from './helpers/device-run';
import { stageAppOnDisk } from './helpers/device-stage';

const board = loadBoard('qemu-virt-arm64');
const available = existsSync(board.qemu!.firmware!) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
/** Liveness bound of one boot; a hang is reset after the watchdog's 30 s (bootloader/native/host.c). */
const BOOT_LIMIT = 420_000;
/** How long the hanging service serves before it hangs: longer than the watchdog's timeout. */
const ALIVE_S = 40;

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

describe.skipIf(!available)('a service that hangs is reset by the watchdog and the app trial falls back', () => {
  let hung = '';
  let after = '';
  let staged: string[] = [];

  beforeAll(async () => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'device-failures-'));
    ok(['keys', 'init', '--dir', at('keys')]);
    ok(['build', '--project', join(ROOT, 'examples/hello'), '--version', '1.2.0', '--security-counter', '3', '--keys', at('keys'), '--out', at('hello.simg'), '--no-typecheck']);
    mkdirSync(at('hang/src'), { recursive: true });
    writeFileSync(at('hang/signet.json'), JSON.stringify({ name: 'hang', board: board.id, entry: 'src/main.ts', assets: [] }));
    writeFileSync(at('hang/src/main.ts'), HANG_APP);
    ok(['build', '--project', at('hang'), '--version', '1.3.0', '--security-counter', '4', '--keys', at('keys'), '--out', at('hang.simg'), '--no-typecheck']);
    ok(['disk', at('hello.simg'), '--board', board.id, '--keys', at('keys'), '--app-test-mode', '--out', at('disk.img'), '--key-dtb', at('pub.dtb')]);
    // The update as the agent stages it: slot B, a trial of one boot.
    staged = stageAppOnDisk(at('disk.img'), board, at('keys/root.json'), new Uint8Array(readFileSync(at('hang.simg'))), 1);
    const args = [at('disk.img'), '--board', board.id, '--key-dtb', at('pub.dtb')];
    hung = (await powerOn(args, { limitMs: BOOT_LIMIT, label: 'trial boot' })).console;
    after = (await powerOn(args, { limitMs: BOOT_LIMIT, label: 'boot after the reset' })).console;
  }, 3 * BOOT_LIMIT);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the trial runs and feeds the watchdog past its timeout, hangs, and the watchdog resets the guest', () => {
    expect(staged).toEqual(['boot[STAGED] slot=b version=1.3.0 tries=1']);
    expect(hung).toContain('host[WATCHDOG] device=/dev/watchdog timeout_s=30 feed_ms=5000');
    expect(hung).toContain('boot[TRIAL] slot=b version=1.3.0 tries=0');
    expect(hung).toContain(`hang-app: alive ${ALIVE_S} s`);
    expect(hung).toContain('hang-app: hanging');
    // Nothing in the guest ended it: no halt, no panic, no reboot(2); the watchdog's reset did.
    expect(hung.slice(hung.indexOf('hang-app: hanging'))).not.toMatch(/boot\[|Kernel panic|reboot:/);
  });

  it('the reset counted as the trial\'s try: the next boot falls back to slot A, whose app runs', () => {
    expect(after).toContain('boot[FALLBACK] slot=b reason=E_TRIAL_EXHAUSTED');
    expect(after).toContain('boot[OK] slot=a version=1.2.0');
    expect(after).toContain('hello from signet');
    expect(after).toContain('boot[HALT]');
  });
});
