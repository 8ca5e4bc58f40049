/**
 * A qemu-virt-arm64 guest updating itself over the air (TCG on this machine: figures compare
 * runs on one machine, not a device), everything through the CLI a vendor uses: `signet disk
 * --boot-ab` (examples/hello 1.2.0, boot image 1.0.0 on A/B boot slots), `signet fit` (boot image
 * 2.0.0), `signet device enroll` + `device provision --identity --set ota.server=…`, `signet
 * server` on 127.0.0.1 (the guest dials 10.0.2.2 through QEMU's user network, mutual TLS),
 * `signet publish` app 1.3.0 and boot 2.0.0 and one combined `signet rollout create`, then
 * `signet run --net user`: the boot stage's agent checks in, stages the app into slot B and the
 * boot image into boot_b, reboots (QEMU's -no-reboot ends the run; the bench powers it on again),
 * U-Boot trial-boots boot_b, the boot stage trial-boots slot B, the app confirms both.
 *
 * device.app_update_confirmed        1 when the server shows the device confirmed on app 1.3.0, else 0
 * device.boot_update_confirmed       1 when the server shows the device confirmed on boot image 2.0.0, else 0
 * device.update_download_bytes       bytes of the boot image the device downloaded and verified
 *                                    (its ota[BOOT-DOWNLOADED] line; 0 when it downloaded none)
 * device.checkin_to_confirmed_ms     from the guest printing the offer it got at check-in to the
 *                                    server's rollouts counting both confirmed (download, verify,
 *                                    stage app and boot image, reboot, U-Boot verified boot of the
 *                                    new boot slot, trial, confirm, report)
 * device.trial_boot_ms               the anchor: starting `signet run` to the guest's boot[TRIAL]
 * device.checkin_to_confirmed_ratio  checkin_to_confirmed_ms ÷ trial_boot_ms (what the update
 *                                    costs beyond one boot)
 * The fallback and power-cut figures of issue 13 come from the device-failure runs (MORE below).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadBoard } from '../sdk/board';
import { cacheDir, sdkRoot } from '../sdk/util/paths';
import { badKernelFellBack, powercut } from './_device-failures';
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

/**
 * More device figures, each from its own guest runs (the device-failure benches add theirs here);
 * their keys go next to this file's.
 */
const MORE: (() => Promise<Figures>)[] = [badKernelFellBack, powercut];

export async function run(): Promise<Figures> {
  const figures = await updateFigures();
  for (const more of MORE) Object.assign(figures, await more());
  return figures;
}

async function updateFigures(): Promise<Figures> {
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
    signet(['disk', at('app-1.2.0.simg'), '--board', board.id, '--keys', at('keys'), '--out', at('disk.img'), '--key-dtb', at('pub.dtb'),
      '--boot-ab', '--boot-version', '1.0.0', '--boot-security-counter', '1']);
    signet(['fit', '--board', board.id, '--keys', at('keys'), '--out', at('boot-2.0.0.itb'), '--version', '2.0.0', '--security-counter', '2']);
    signet(['device', 'provision', '--disk', at('disk.img'), '--id', DEVICE, '--board', board.id, '--ca-dir', at('keys'), '--identity', at('device'),
      '--set', `ota.server=https://10.0.2.2:${new URL(url).port}`, '--set', 'ota.servername=localhost', '--set', 'ota.first-s=1', '--set', 'ota.interval-s=5']);
    signet(['publish', at('app-1.3.0.simg'), '--server', url, '--keys', at('keys'), '--admin', at('admin')]);
    signet(['publish', at('boot-2.0.0.itb'), '--server', url, '--keys', at('keys'), '--admin', at('admin')]);
    signet(['rollout', 'create', '--board', board.id, '--version', '1.3.0', '--boot-version', '2.0.0', '--percent', '100', '--halt-failure-rate', '0.5',
      '--server', url, '--admin', at('admin')]);

    const runArgs = ['run', at('disk.img'), '--board', board.id, '--key-dtb', at('pub.dtb'), '--net', 'user'];
    const OFFER = /ota\[OFFER\]/;
    const first = await runGuest(runArgs, [OFFER], () => false); // ends when the guest reboots
    const offerAt = first.seen.get(OFFER);
    const TRIAL = /boot\[TRIAL\] slot=b version=1\.3\.0/;
    const REPORTED = /ota\[REPORT\] status=confirmed target=\S+boot-2\.0\.0\.itb/;
    const started = performance.now();
    let confirmedAt = 0;
    let lastAsk = 0;
    let appConfirmed = false;
    let bootConfirmed = false;
    const second = await runGuest(runArgs, [TRIAL, REPORTED], (w) => {
      if (/boot\[RECOVERY\]|host\[ERROR\]/.test(w.text)) return true;
      if (!w.seen.has(REPORTED) || performance.now() - lastAsk < 200) return false;
      lastAsk = performance.now();
      const rs = JSON.parse(signet(['rollout', 'status', '--json', '--server', url, '--admin', at('admin')])) as { target: string; counts: { confirmed: number } }[];
      appConfirmed = rs.some((r) => r.target.endsWith('-1.3.0.simg') && r.counts.confirmed === 1);
      bootConfirmed = rs.some((r) => r.target.endsWith('/boot-2.0.0.itb') && r.counts.confirmed === 1);
      if (appConfirmed && bootConfirmed) confirmedAt = performance.now();
      return confirmedAt > 0;
    });
    const trialAt = second.seen.get(TRIAL);
    const ok = offerAt !== undefined && trialAt !== undefined && confirmedAt > 0;
    const downloaded = /ota\[BOOT-DOWNLOADED\] target=\S+ bytes=(\d+)/.exec(first.text);
    // Includes the QEMU restart between the boots (the bench's stand-in for the reset).
    const checkinToConfirmed = ok ? confirmedAt - offerAt! : 0;
    const trialBoot = ok ? trialAt! - started : 0;
    return {
      app_update_confirmed: { value: appConfirmed ? 1 : 0, unit: '' },
      boot_update_confirmed: { value: bootConfirmed ? 1 : 0, unit: '' },
      update_download_bytes: { value: downloaded ? Number(downloaded[1]) : 0, unit: 'bytes' },
      checkin_to_confirmed_ms: { value: Math.round(checkinToConfirmed), unit: 'ms' },
      trial_boot_ms: { value: Math.round(trialBoot), unit: 'ms' },
      checkin_to_confirmed_ratio: { value: ok ? checkinToConfirmed / trialBoot : 0, unit: 'x' },
    };
  } finally {
    server?.kill('SIGTERM');
    rmSync(work, { recursive: true, force: true });
  }
}
