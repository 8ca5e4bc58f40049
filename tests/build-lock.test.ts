// The cached builds' shared lock and build-tool spawner (sdk/util/build-lock.ts), as the kernel
// and Xen builds use them: one builder per key, a dead builder's lock taken over, a waiting
// process handed the entry the other built, and no make left running after its command ends.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildSync } from 'esbuild';
import { afterEach, describe, expect, it } from 'vitest';
import { lockBuild } from '../sdk/util/build-lock';

let dir = '';
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});
const fresh = () => (dir = mkdtempSync(join(tmpdir(), 'signet-lock-')));
const entryOf = (root: string) => () => (existsSync(join(root, 'entry')) ? readFileSync(join(root, 'entry'), 'utf8') : undefined);

/** A pid that no process has: a child that has exited and been reaped. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('lockBuild', () => {
  it('hands back a finished entry without taking the lock', async () => {
    const root = fresh();
    writeFileSync(join(root, 'entry'), 'built');
    expect(await lockBuild(root, 'k', entryOf(root))).toEqual({ entry: 'built' });
    expect(existsSync(join(root, '.lock-k'))).toBe(false);
  });

  it('takes the lock with its pid, and release() removes it', async () => {
    const root = fresh();
    const held = await lockBuild(root, 'k', entryOf(root));
    expect('release' in held).toBe(true);
    expect(readFileSync(join(root, '.lock-k'), 'utf8')).toBe(String(process.pid));
    if ('release' in held) held.release();
    expect(existsSync(join(root, '.lock-k'))).toBe(false);
  });

  it('takes over a lock whose builder died', async () => {
    const root = fresh();
    writeFileSync(join(root, '.lock-k'), String(deadPid()));
    const held = await lockBuild(root, 'k', entryOf(root));
    expect('release' in held).toBe(true);
    expect(readFileSync(join(root, '.lock-k'), 'utf8')).toBe(String(process.pid));
    if ('release' in held) held.release();
  });

  it('tries again when the lock is gone by the time it reads the holder (a dangling link stands in for that race)', async () => {
    const root = fresh();
    symlinkSync(join(root, 'gone'), join(root, '.lock-k')); // exists for the exclusive create, not for the read
    let calls = 0;
    const got = await lockBuild(root, 'k', () => (++calls === 2 ? 'theirs' : undefined));
    expect(got).toEqual({ entry: 'theirs' });
  });

  it('takes over a lock file that never got a pid (or holds anything else) once it is old, and waits on a fresh one', async () => {
    for (const text of ['', 'not a pid', '-1']) {
      const root = fresh();
      const lock = join(root, '.lock-k');
      writeFileSync(lock, text);
      const old = new Date(Date.now() - 60_000);
      utimesSync(lock, old, old);
      const held = await lockBuild(root, 'k', entryOf(root));
      expect('release' in held).toBe(true);
      expect(readFileSync(lock, 'utf8')).toBe(String(process.pid));
      if ('release' in held) held.release();
      rmSync(root, { recursive: true, force: true });
    }
    // A fresh empty lock is a builder between its create and its write: wait for it.
    const root = fresh();
    writeFileSync(join(root, '.lock-k'), '');
    const waited: number[] = [];
    const got = await lockBuild(root, 'k', entryOf(root), (pid) => {
      waited.push(pid);
      writeFileSync(join(root, 'entry'), 'theirs');
    });
    expect(got).toEqual({ entry: 'theirs' });
    expect(waited).toEqual([0]);
  }, 30_000);

  it('creates the cache folder it locks in', async () => {
    const root = join(fresh(), 'kernels');
    const held = await lockBuild(root, 'k', entryOf(root));
    expect(readFileSync(join(root, '.lock-k'), 'utf8')).toBe(String(process.pid));
    if ('release' in held) held.release();
  });

  it('waits while a live builder holds the lock, then hands back what it built', async () => {
    const root = fresh();
    const builder = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    try {
      writeFileSync(join(root, '.lock-k'), String(builder.pid));
      const waited: number[] = [];
      const got = lockBuild(root, 'k', entryOf(root), (pid) => {
        waited.push(pid);
        if (waited.length === 2) writeFileSync(join(root, 'entry'), 'theirs'); // the other build lands
      });
      expect(await got).toEqual({ entry: 'theirs' });
      expect(waited).toEqual([builder.pid, builder.pid]);
      expect(readFileSync(join(root, '.lock-k'), 'utf8')).toBe(String(builder.pid)); // not ours to remove
    } finally {
      builder.kill('SIGKILL');
    }
  }, 30_000);
});

describe('spawnBuild', () => {
  it('ends the build tool and what it started when the command that spawned it exits', async () => {
    const root = fresh();
    const pidFile = join(root, 'grandchild.pid');
    // A command that starts a "make" whose own child would run on for minutes, then exits.
    writeFileSync(join(root, 'cmd.ts'), `
      import { existsSync } from 'node:fs';
      import { spawnBuild } from ${JSON.stringify(resolve(__dirname, '../sdk/util/build-lock.ts'))};
      spawnBuild('sh', ['-c', 'sleep 300 & echo $! > ${pidFile}; wait'], {});
      const t = setInterval(() => { if (existsSync(${JSON.stringify(pidFile)})) { clearInterval(t); process.exit(3); } }, 20);
    `);
    buildSync({ entryPoints: [join(root, 'cmd.ts')], bundle: true, platform: 'node', format: 'esm', outfile: join(root, 'cmd.mjs'), logLevel: 'silent' });
    const r = spawnSync(process.execPath, [join(root, 'cmd.mjs')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(3);
    const grandchild = Number(readFileSync(pidFile, 'utf8').trim());
    expect(grandchild).toBeGreaterThan(0);
    // SIGKILL to the group is delivered before exit returns; give the kernel a moment to reap.
    let alive = true;
    for (let i = 0; i < 100 && alive; i++) {
      try {
        process.kill(grandchild, 0);
        alive = !/^Z/m.test(readFileSync(`/proc/${grandchild}/stat`, 'utf8').split(') ')[1] ?? '');
        if (alive) await new Promise((r) => setTimeout(r, 50));
      } catch {
        alive = false;
      }
    }
    expect(alive).toBe(false);
  }, 90_000);
});
