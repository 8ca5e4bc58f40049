/**
 * build.hello_ms: median wall time of 5 `signet build` runs of examples/hello (a fresh CLI
 * process each time, type check included, as a vendor runs it). build.hello_node_start_ms is
 * the anchor: `node -e 0` in the same run, so the ratio says what the build itself costs.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, type Figures } from './_lib';


function timed(args: string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

export async function run(): Promise<Figures> {
  const work = mkdtempSync(join(tmpdir(), 'signet-bench-build-'));
  const cli = join(process.cwd(), 'dist', 'signet.mjs');
  timed([join(process.cwd(), 'sdk/cli/signet.mjs'), 'keys', 'init', '--dir', join(work, 'keys')]);
  const build = (i: number) => timed([cli, 'build', '--project', join(process.cwd(), 'examples/hello'), '--version', '1.0.0',
    '--security-counter', '1', '--keys', join(work, 'keys'), '--out', join(work, `hello-${i}.simg`)]);
  build(0); // warm the file cache
  const runs = [1, 2, 3, 4, 5].map(build);
  const nodeStart = median([1, 2, 3, 4, 5].map(() => timed(['-e', '0'])));
  const noTc = median([1, 2, 3].map((i) => timed([cli, 'build', '--project', join(process.cwd(), 'examples/hello'), '--version', '1.0.0',
    '--security-counter', '1', '--keys', join(work, 'keys'), '--out', join(work, `n-${i}.simg`), '--no-typecheck'])));
  return {
    hello_ms: { value: median(runs), unit: 'ms' },
    hello_no_typecheck_ms: { value: noTc, unit: 'ms' },
    node_start_ms: { value: nodeStart, unit: 'ms' },
  };
}
