/**
 * Debian's kernel source (the `linux-source-<version>` package: /usr/src/linux-source-<version>.tar.xz),
 * found through dpkg and unpacked once into the project cache (cacheDir()/kernel-src/<package>_<version>),
 * where every build reads it (kbuild's O= keeps the tree clean). Unpacked into a temp folder and
 * renamed into place, so a tree in the cache is always whole; two processes unpacking at once
 * both finish and one rename wins.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { cacheDir } from '../util/paths';
import { KernelError } from './errors';

export interface KernelSource {
  /** linux-source-6.1 */
  package: string;
  /** The installed package's version (dpkg), e.g. 6.1.192-3: part of every cache key. */
  packageVersion: string;
  tarball: string;
  /** The unpacked tree in the cache (read only). */
  tree: string;
  /** The package's changelog date (its SOURCE_DATE_EPOCH), seconds. */
  sourceDateEpoch: number;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd, env: opts.env, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : 127) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (error && code === 127 ? error.message : '') });
    });
  });
}

/** The date of the newest changelog entry (` -- Name <mail>  Thu, 26 Nov 2026 18:12:56 +0100`). */
export function changelogEpoch(changelog: string): number | undefined {
  const m = /^ -- .*?>  (.+)$/m.exec(changelog);
  const t = m ? Date.parse(m[1]!) : NaN;
  return Number.isFinite(t) ? Math.floor(t / 1000) : undefined;
}

const inFlight = new Map<string, Promise<KernelSource>>();

/** The installed linux-source-<version> package, unpacked into the cache. */
export function kernelSource(version: string, cache = cacheDir()): Promise<KernelSource> {
  const key = `${cache}\0${version}`;
  let p = inFlight.get(key);
  if (!p) {
    p = locateAndUnpack(version, cache).finally(() => inFlight.delete(key));
    inFlight.set(key, p);
  }
  return p;
}

async function locateAndUnpack(version: string, cache: string): Promise<KernelSource> {
  const pkg = `linux-source-${version}`;
  const hint = `install Debian's kernel source: apt-get install ${pkg} (or pin another version in the board's kernel.version)`;
  const q = await run('dpkg-query', ['-W', '-f=${Version}\\t${db:Status-Status}', pkg]);
  const [packageVersion, status] = q.stdout.trim().split('\t');
  if (q.code !== 0 || !packageVersion || status !== 'installed') {
    throw new KernelError('E_KERNEL_SOURCE', `Debian package ${pkg} is not installed`, hint);
  }
  const tarball = `/usr/src/${pkg}.tar.xz`;
  if (!existsSync(tarball)) throw new KernelError('E_KERNEL_SOURCE', `${pkg} ${packageVersion} is installed but ${tarball} is missing`, `reinstall it: apt-get install --reinstall ${pkg}`);
  let sourceDateEpoch: number | undefined;
  try {
    sourceDateEpoch = changelogEpoch(gunzipSync(readFileSync(`/usr/share/doc/${pkg}/changelog.Debian.gz`)).toString('utf8'));
  } catch {
    // no changelog (docs excluded by dpkg path filters): the tarball's own date below
  }
  sourceDateEpoch ??= Math.floor(statSync(tarball).mtimeMs / 1000);

  const base = join(cache, 'kernel-src', `${pkg}_${packageVersion.replace(/[^A-Za-z0-9.+~-]/g, '_')}`);
  const tree = join(base, pkg);
  if (!existsSync(join(tree, 'Makefile'))) {
    mkdirSync(base, { recursive: true });
    const tmp = join(base, `.unpack-${process.pid}-${randomBytes(4).toString('hex')}`);
    mkdirSync(tmp);
    try {
      const r = await run('tar', ['-C', tmp, '-xf', tarball]);
      if (r.code !== 0) throw new KernelError('E_KERNEL_SOURCE', `tar could not unpack ${tarball}: ${r.stderr.trim().split('\n').pop()}`, `check the disk space under ${cache}, or reinstall ${pkg}`);
      if (!existsSync(join(tmp, pkg, 'Makefile'))) throw new KernelError('E_KERNEL_SOURCE', `${tarball} holds no ${pkg}/Makefile`, `reinstall ${pkg}`);
      try {
        renameSync(join(tmp, pkg), tree);
      } catch (e) {
        // Another process unpacked the same package first: its tree is as good as ours.
        if (!existsSync(join(tree, 'Makefile'))) throw e;
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  return { package: pkg, packageVersion, tarball, tree, sourceDateEpoch };
}
