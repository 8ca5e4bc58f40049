/**
 * kernel.build_s: `signet kernel build --board qemu-virt-arm64` cold, into an empty kernel cache
 * (the source unpacked, configured, compiled with make -j<nproc>); kernel.cached_build_s: the
 * same command again, answered from the cache. The anchor, in the same run: kernel.unpack_s,
 * `tar -xf` of Debian's linux-source tarball alone (the floor of any build from it), and
 * kernel.build_vs_unpack = build_s / unpack_s. Also the Image's size and the options set.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Figures } from './_lib';

const BOARD = 'qemu-virt-arm64';

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): { s: number; stdout: string } {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return { s: Number(process.hrtime.bigint() - t) / 1e9, stdout: r.stdout };
}

export async function run(): Promise<Figures> {
  const root = process.cwd();
  const cli = join(root, 'dist', 'signet.mjs');
  const cache = process.env.SIGNET_CACHE ?? join(root, '.cache', 'signet');
  const work = mkdtempSync(join(cache, 'bench-kernel-'));
  try {
    // A cache with everything but kernels: the Debian packages and the C host are not what is measured.
    const cold = join(work, 'cache');
    mkdirSync(cold);
    for (const d of readdirSync(cache)) {
      if (['debs', 'native', 'gzip'].includes(d)) symlinkSync(join(cache, d), join(cold, d));
    }
    const env = { SIGNET_CACHE: cold };
    const build = timed(process.execPath, [cli, 'kernel', 'build', '--board', BOARD, '--json'], env);
    const k = JSON.parse(build.stdout) as { bytes: number; optionsSet: number; cached: boolean };
    if (k.cached) throw new Error('the cold build was answered from a cache');
    const cached = timed(process.execPath, [cli, 'kernel', 'build', '--board', BOARD, '--json'], env);
    if (!(JSON.parse(cached.stdout) as { cached: boolean }).cached) throw new Error('the second build was not a cache hit');
    const unpackDir = join(work, 'unpack');
    mkdirSync(unpackDir);
    const unpack = timed('tar', ['-C', unpackDir, '-xf', '/usr/src/linux-source-6.1.tar.xz']);
    return {
      build_s: { value: build.s, unit: 's' },
      cached_build_s: { value: cached.s, unit: 's' },
      unpack_s: { value: unpack.s, unit: 's' },
      build_vs_unpack: { value: build.s / unpack.s, unit: 'x' },
      image_bytes: { value: k.bytes, unit: 'B' },
      options_set: { value: k.optionsSet, unit: 'options' },
      jobs: { value: availableParallelism(), unit: 'cores' },
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
