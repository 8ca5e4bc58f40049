/**
 * What the cached builds (sdk/kernel/build.ts, sdk/xen/build.ts) share: one builder per cache key
 * across processes, and a build tool that does not outlive the command that started it.
 */
import { spawn, type ChildProcessByStdio, type SpawnOptionsWithoutStdio } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { join } from 'node:path';
import { trackTemp } from './fs-atomic';

/** How often a waiting process looks again for the entry another process is building. */
const WAIT_MS = 2000;
/** How soon it tries again when the lock went away between its attempt and its read. */
const RACE_MS = 50;
/** A lock file without a pid this old was left by a process that died before writing it. */
const NO_PID_STALE_MS = 10_000;

/** When the lock file was last written (ms since the epoch); now when it is already gone. */
function lockAge(lock: string): number {
  try {
    return statSync(lock).mtimeMs;
  } catch {
    return Date.now();
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Waits until this process may build `key` in `root` (created if missing), or another process
 * has built it.
 * `ready()` reads the finished entry (undefined while there is none). The lock is the file
 * `<root>/.lock-<key>` holding the builder's pid; one whose builder died is taken over. A held
 * lock is removed by `release()`, and on any exit or signal (fs-atomic's clean-up) before it.
 */
export async function lockBuild<T>(
  root: string,
  key: string,
  ready: () => T | undefined,
  onWait?: (holderPid: number) => void,
): Promise<{ entry: T } | { release: () => void }> {
  const lock = join(root, `.lock-${key}`);
  for (;;) {
    const entry = ready();
    if (entry !== undefined) return { entry };
    mkdirSync(root, { recursive: true });
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let text: string;
      try {
        text = readFileSync(lock, 'utf8');
      } catch (r) {
        if ((r as NodeJS.ErrnoException).code !== 'ENOENT') throw r;
        await new Promise((done) => setTimeout(done, RACE_MS)); // its holder just released it
        continue;
      }
      const holder = /^[1-9]\d*$/.test(text.trim()) ? Number(text.trim()) : 0;
      // Its builder died, or the file never got a pid (a crash between create and write, or
      // anything else in it) and is older than a write takes: take over.
      if (holder > 0 ? !processAlive(holder) : Date.now() - lockAge(lock) > NO_PID_STALE_MS) {
        rmSync(lock, { force: true });
        continue;
      }
      onWait?.(holder);
      await new Promise((r) => setTimeout(r, WAIT_MS));
    }
  }
  const untrack = trackTemp(lock);
  return {
    release: () => {
      rmSync(lock, { force: true });
      untrack();
    },
  };
}

/**
 * Spawns a build tool (make) in its own process group, killed with everything it started when
 * this process exits or gets SIGINT, SIGTERM or SIGHUP: an orphaned make keeps compiling into a
 * folder already removed.
 */
export function spawnBuild(command: string, args: string[], options: SpawnOptionsWithoutStdio): ChildProcessByStdio<null, Readable, Readable> {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const stop = () => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  process.on('exit', stop);
  for (const sig of signals) process.on(sig, stop);
  child.on('close', () => {
    process.off('exit', stop);
    for (const sig of signals) process.off(sig, stop);
  });
  return child;
}
