/** Running the compilers for the native host build: shared by build.ts and device.ts. */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rename } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { availableParallelism, setPriority } from 'node:os';
import { NativeBuildError } from './errors';

export interface NativeTargetSpec {
  /** Compiler command. */
  cc: string;
  /** Debian package that provides `cc`. */
  debianPackage: string;
  /** ELF e_machine of the output on this target (host: of the build machine). */
  elfMachine: number;
  /** What `signet_native.arch` reports. */
  arch: 'x86_64' | 'aarch64' | 'armhf';
}

export function run(cmd: string, args: string[], spec: NativeTargetSpec, cwd?: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { cwd, env: { ...process.env, LC_ALL: 'C' }, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error === null) {
        resolve({ stdout, stderr });
      } else if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(
          new NativeBuildError('E_NATIVE_CC_MISSING', `${cmd} is not installed — run 'apt-get install ${spec.debianPackage}'`, {
            cause: error,
          }),
        );
      } else {
        const tail = String(stderr).trim().split('\n').slice(-12).join('\n');
        reject(new NativeBuildError('E_NATIVE_COMPILE', `${cmd} failed: ${tail}`, { cause: error }));
      }
    });
    // Compiles are background work: the machine may be timing boots at the same time.
    if (child.pid !== undefined) {
      try {
        setPriority(child.pid, 10);
      } catch {
        // not allowed: run at normal priority
      }
    }
  });
}

/** Runs `jobs` at most `limit` at a time (one per core). */
export async function inParallel<T>(jobs: Array<() => Promise<T>>, limit = Math.max(1, availableParallelism())): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, jobs.length) }, async () => {
      while (next < jobs.length) {
        const i = next++;
        out[i] = await jobs[i]!();
      }
    }),
  );
  return out;
}

/** The compiler's identity: version line and target triple. */
export async function compilerId(spec: NativeTargetSpec): Promise<string> {
  const version = (await run(spec.cc, ['--version'], spec)).stdout.split('\n')[0]!.trim();
  const machine = (await run(spec.cc, ['-dumpmachine'], spec)).stdout.trim();
  return `${version} (${machine})`;
}

export function digest(parts: Array<string | Buffer>): string {
  const hash = createHash('sha256');
  for (const p of parts) {
    const b = typeof p === 'string' ? Buffer.from(p) : p;
    hash.update(`${b.length}:`); // length-prefixed, so parts cannot run together
    hash.update(b);
  }
  return hash.digest('hex').slice(0, 16);
}

/** Moves `from` to `to` unless `to` already exists (a concurrent build won). */
export async function publish(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if ((code === 'ENOTEMPTY' || code === 'EEXIST') && existsSync(to)) return;
    throw error;
  }
}
