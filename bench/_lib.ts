/** Shared bits for benchmarks. Figures are ratios against an anchor measured in the same run. */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { sdkRoot } from '../sdk/util/paths';

export type Figures = Record<string, { value: number; unit: string }>;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function timeMs(f: () => void): number {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** Best of n: the least disturbed run on a noisy machine. */
export function bestOf(n: number, f: () => void): number {
  let best = Infinity;
  for (let i = 0; i < n; i++) best = Math.min(best, timeMs(f));
  return best;
}

/** Stop `signet run` and its QEMU (QEMU first: it must not outlive the run). */
export async function stopRun(p: ChildProcess): Promise<void> {
  const q = spawnSync('pgrep', ['-P', String(p.pid), '-f', 'qemu-system'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
  for (const pid of q) try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
  if (p.exitCode === null && p.signalCode === null) {
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
  }
}

/** Run the `signet` CLI (sources, as a user would) and return its stdout; a non-zero exit throws with its output. */
export function signetCli(args: string[], timeoutMs: number): string {
  const r = spawnSync(process.execPath, [join(sdkRoot(), 'sdk', 'cli', 'signet.mjs'), ...args], { encoding: 'utf8', timeout: timeoutMs });
  if (r.status !== 0) throw new Error(`signet ${args.slice(0, 2).join(' ')} failed: ${r.stderr}${r.stdout}`);
  return r.stdout;
}
