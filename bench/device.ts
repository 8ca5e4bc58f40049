/**
 * A qemu-virt-arm64 guest updating itself over the air (TCG on this machine: figures compare
 * runs on one machine, not a device), everything through the CLI a vendor uses: `signet disk`
 * (examples/hello 1.2.0), `signet device enroll` + `device provision --identity --set
 * ota.server=…`, `signet server` on 127.0.0.1 (the guest dials 10.0.2.2 through QEMU's user
 * network, mutual TLS), `signet publish` 1.3.0 and `signet rollout create`, then `signet run
 * --net user`: the boot stage's agent checks in, stages, reboots (QEMU's -no-reboot ends the
 * run; the bench powers it on again), trial-boots and confirms.
 *
 * device.app_update_confirmed        1 when the server shows the device confirmed on 1.3.0, else 0
 * device.checkin_to_confirmed_ms     from the guest printing the offer it got at check-in to the
 *                                    server's rollout counting it confirmed (download, verify,
 *                                    stage, reboot, U-Boot verified boot, trial, confirm, report)
 * device.trial_boot_ms               the anchor: starting `signet run` to the guest's boot[TRIAL]
 * device.checkin_to_confirmed_ratio  checkin_to_confirmed_ms ÷ trial_boot_ms (what the update
 *                                    costs beyond one boot)
 * The other device.* figures of issue 13 (boot image, fallback, power cuts) are not measured yet.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadBoard } from '../sdk/board';
import { cacheDir, sdkRoot } from '../sdk/util/paths';
import { signetCli, stopRun, type Figures } from './_lib';

const CLI = join(sdkRoot(), 'sdk', 'cli', 'signet.mjs');
const LIMIT_MS = 900_000; // liveness bound only
const DEVICE = 'bench-0001';

function signet(args: string[]): string {
  return signetCli(args, LIMIT_MS);
}

/** Console lines as they arrive, each with the time it was first seen. */
interface Watched { text: string; seen: Map<RegExp, number> }

async function runGuest(args: string[], watch: RegExp[], until: (w: Watched) => boolean): Promise<Watched> {
  const w: Watched = { text: '', seen: new Map() };
  const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const take = (d: Buffer) => {
    w.text += d.toString('latin1');
    for (const re of watch) if (!w.seen.has(re) && re.test(w.text)) w.seen.set(re, performance.now());
  };
  p.stdout!.on('data', take);
  p.stderr!.on('data', take);
  const deadline = Date.now() + LIMIT_MS;
  try {
    while (p.exitCode === null && p.signalCode === null && !until(w)) {
      if (Date.now() > deadline) throw new Error('the guest did not finish; console:\n' + w.text.slice(-3000));
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await stopRun(p);
  }
  return w;
}

export async function run(): Promise<Figures> {
  const board = loadBoard('qemu-virt-arm64');
  mkdirSync(cacheDir(), { recursive: true });
  const work = mkdtempSync(join(cacheDir(), 'bench-device-'));
  const at = (p: string) => join(work, p);
  let server: ChildProcess | undefined;
  try {
    signet(['keys', 'init', '--dir', at('keys')]);
    for (const [v, c] of [['1.2.0', '3'], ['1.3.0', '4']]) {
      signet(['build', '--project', join(sdkRoot(), 'examples', 'hello'), '--version', v, '--security-counter', c, '--keys', at('keys'), '--out', at(`app-${v}.simg`), '--no-typecheck']);
    }
    signet(['server', 'keys', '--keys', at('keys'), '--out', at('server-keys')]);
    server = spawn(process.execPath, [CLI, 'server', '--data', at('data'), '--keys', at('server-keys'), '--port', '0', '--bind', '127.0.0.1', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      server!.stdout!.on('data', (d) => {
        out += d;
        const m = /"url":"([^"]+)"/.exec(out);
        if (m) resolve(m[1]);
      });
      server!.on('exit', (c) => reject(new Error(`signet server exited ${c}: ${out}`)));
    });
    signet(['device', 'enroll', '--admin', '--id', 'admin', '--keys', at('keys'), '--out', at('admin')]);
    signet(['device', 'enroll', '--id', DEVICE, '--board', board.id, '--keys', at('keys'), '--out', at('device')]);
    signet(['disk', at('app-1.2.0.simg'), '--board', board.id, '--keys', at('keys'), '--out', at('disk.img'), '--key-dtb', at('pub.dtb')]);
    signet(['device', 'provision', '--disk', at('disk.img'), '--id', DEVICE, '--board', board.id, '--ca-dir', at('keys'), '--identity', at('device'),
      '--set', `ota.server=https://10.0.2.2:${new URL(url).port}`, '--set', 'ota.servername=localhost', '--set', 'ota.first-s=1', '--set', 'ota.interval-s=5']);
    signet(['publish', at('app-1.3.0.simg'), '--server', url, '--keys', at('keys'), '--admin', at('admin')]);
    signet(['rollout', 'create', '--board', board.id, '--version', '1.3.0', '--percent', '100', '--halt-failure-rate', '0.5', '--server', url, '--admin', at('admin')]);

    const runArgs = ['run', at('disk.img'), '--board', board.id, '--key-dtb', at('pub.dtb'), '--net', 'user'];
    const OFFER = /ota\[OFFER\]/;
    const first = await runGuest(runArgs, [OFFER], () => false); // ends when the guest reboots
    const offerAt = first.seen.get(OFFER);
    const TRIAL = /boot\[TRIAL\] slot=b version=1\.3\.0/;
    const REPORTED = /ota\[REPORT\] status=confirmed/;
    const started = performance.now();
    let confirmedAt = 0;
    let lastAsk = 0;
    const second = await runGuest(runArgs, [TRIAL, REPORTED], (w) => {
      if (/boot\[RECOVERY\]|host\[ERROR\]/.test(w.text)) return true;
      if (!w.seen.has(REPORTED) || performance.now() - lastAsk < 200) return false;
      lastAsk = performance.now();
      const r = JSON.parse(signet(['rollout', 'status', '--json', '--server', url, '--admin', at('admin')]))[0];
      if (r.counts.confirmed === 1) confirmedAt = performance.now();
      return confirmedAt > 0;
    });
    const trialAt = second.seen.get(TRIAL);
    const ok = offerAt !== undefined && trialAt !== undefined && confirmedAt > 0;
    // Includes the QEMU restart between the boots (the bench's stand-in for the reset).
    const checkinToConfirmed = ok ? confirmedAt - offerAt! : 0;
    const trialBoot = ok ? trialAt! - started : 0;
    return {
      app_update_confirmed: { value: ok ? 1 : 0, unit: '' },
      checkin_to_confirmed_ms: { value: Math.round(checkinToConfirmed), unit: 'ms' },
      trial_boot_ms: { value: Math.round(trialBoot), unit: 'ms' },
      checkin_to_confirmed_ratio: { value: ok ? checkinToConfirmed / trialBoot : 0, unit: 'x' },
    };
  } finally {
    server?.kill('SIGTERM');
    rmSync(work, { recursive: true, force: true });
  }
}
