/**
 * Powers a disk on with the product's runner (`signet run`, QEMU with -no-reboot: a reset of the
 * guest, by reboot(2), panic=-1 or the watchdog, ends the run; powering on again is the next
 * call) and collects its console. `until` may stop it early; `cut` pulls the power: QEMU is
 * killed with SIGKILL the moment the console matches it, as a power cut would stop the board.
 */
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { sdkRoot } from '../../sdk/util/paths';

/** The CLI bundle the tests run (tests/helpers/cli.ts CLI; spelled out here, as benches bundle this file as ESM, without __dirname). */
const CLI = join(sdkRoot(), 'dist', 'signet.mjs');

export interface PowerOn {
  console: string;
  /** How the run ended: the guest reset or powered off (QEMU exited), `until` matched, or the power was cut. */
  ended: 'exited' | 'until' | 'cut';
}

/** The QEMU processes a `signet run` started (its children). */
function qemuOf(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid), '-f', 'qemu-system'], { encoding: 'utf8' });
  return r.stdout.trim().split('\n').filter(Boolean).map(Number);
}

/**
 * `cut` is checked on every console chunk and, as the console may be quiet while the guest writes
 * its flash (a cut that waits for bytes on the disk file), every 25 ms as well. `logFile`: the
 * console is also appended there as it comes.
 */
export async function powerOn(args: string[], o: { limitMs: number; until?: (c: string) => boolean; cut?: (c: string) => boolean; label?: string; logFile?: string }): Promise<PowerOn> {
  let out = '';
  let ended: PowerOn['ended'] = 'exited';
  const run = spawn(process.execPath, [CLI, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((r) => run.once('exit', r));
  const kill = () => {
    for (const pid of qemuOf(run.pid!)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  };
  const cutIfDue = () => {
    if (ended === 'exited' && o.cut && o.cut(out)) {
      ended = 'cut';
      kill();
    }
  };
  const take = (d: Buffer) => {
    out += d.toString('latin1');
    if (o.logFile) appendFileSync(o.logFile, d);
    // Checked on every chunk, not only on the poll, so the cut lands as close to its line as it can.
    cutIfDue();
  };
  run.stdout!.on('data', take);
  run.stderr!.on('data', take);
  const poll = o.cut ? setInterval(cutIfDue, 25) : undefined;
  const deadline = Date.now() + o.limitMs;
  try {
    while (run.exitCode === null && run.signalCode === null) {
      if (ended === 'exited' && o.until && o.until(out)) {
        ended = 'until';
        break;
      }
      if (Date.now() > deadline) throw new Error(`${o.label ?? 'signet run'}: the guest did not finish within ${o.limitMs / 1000} s; console:\n${out.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    if (poll) clearInterval(poll);
    if (run.exitCode === null && run.signalCode === null) {
      kill();
      run.kill('SIGTERM');
      await exited;
    }
  }
  return { console: out, ended };
}
