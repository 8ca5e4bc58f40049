// Real apt: these tests download from Debian's archive through apt-get and
// need `apt-get update` done with the arm64 and armhf architectures enabled.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DebianError, fetchDeb, resolveMeta, showPackage } from '../sdk/build/debian';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const apt = (args: string[]) => execFileSync('apt-cache', args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'signet-debian-'));
});
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<DebianError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DebianError);
  return error as DebianError;
}

describe('fetchDeb', () => {
  it('downloads and extracts duktape-dev:amd64, then serves it from the cache', async () => {
    const cacheDir = join(scratch, 'sequential');
    const dir = await fetchDeb('duktape-dev', 'amd64', { cacheDir });
    expect(dir).toBe(join(cacheDir, 'debs', 'duktape-dev_amd64'));

    const duktapeC = readFileSync(join(dir, 'usr/share/duktape/duktape.c'), 'utf8');
    expect(duktapeC).toMatch(/Duktape/);
    expect(existsSync(join(dir, 'usr/share/duktape/duktape.h'))).toBe(true);
    expect(existsSync(join(dir, 'usr/share/duktape/duk_config.h'))).toBe(true);

    const info = await showPackage('duktape-dev', 'amd64');
    const stamp = JSON.parse(readFileSync(join(dir, '.signet-deb.json'), 'utf8'));
    expect(stamp).toEqual({ package: 'duktape-dev', arch: 'amd64', version: info.version, sha256: info.sha256 });
    const deb = join(cacheDir, 'debs', `duktape-dev_${info.version.replace(/:/g, '%3a')}_amd64.deb`);
    expect(existsSync(deb)).toBe(true);

    // A second call finds the extracted folder as it was: same inode, nothing rewritten.
    const before = statSync(dir).ino;
    const debBefore = statSync(deb).mtimeMs;
    expect(await fetchDeb('duktape-dev', 'amd64', { cacheDir })).toBe(dir);
    expect(statSync(dir).ino).toBe(before);
    expect(statSync(deb).mtimeMs).toBe(debBefore);

    // A stamp from another version makes the folder stale: it is re-extracted from the cached .deb.
    const staleStamp = JSON.stringify({ ...stamp, version: '0.0.1-1' });
    writeFileSync(join(dir, '.signet-deb.json'), staleStamp);
    // ...unless the caller accepts any cached version.
    expect(await fetchDeb('duktape-dev', 'amd64', { cacheDir, acceptCached: true })).toBe(dir);
    expect(readFileSync(join(dir, '.signet-deb.json'), 'utf8')).toBe(staleStamp);
    expect(await fetchDeb('duktape-dev', 'amd64', { cacheDir })).toBe(dir);
    expect(JSON.parse(readFileSync(join(dir, '.signet-deb.json'), 'utf8'))).toEqual(stamp);
    expect(statSync(deb).mtimeMs).toBe(debBefore);
    expect(readFileSync(join(dir, 'usr/share/duktape/duktape.c'), 'utf8')).toBe(duktapeC);
  });

  it('coalesces concurrent calls within one process', async () => {
    const cacheDir = join(scratch, 'coalesced');
    const dirs = await Promise.all([1, 2, 3].map(() => fetchDeb('duktape-dev', 'amd64', { cacheDir })));
    expect(new Set(dirs).size).toBe(1);
    expect(existsSync(join(dirs[0]!, 'usr/share/duktape/duktape.c'))).toBe(true);
  });

  it('is safe when several processes fetch the same package into one cache', async () => {
    // Bundle the real module so plain node processes can race each other.
    const script = join(scratch, 'fetch.mjs');
    await build({
      stdin: {
        contents: `import { fetchDeb } from './sdk/build/debian';
          fetchDeb('duktape-dev', 'amd64', { cacheDir: process.argv[2] }).then((d) => console.log(d), (e) => { console.error(e.message); process.exit(1); });`,
        resolveDir: repoRoot,
        loader: 'ts',
      },
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: script,
      logLevel: 'silent',
    });
    const cacheDir = join(scratch, 'racing');
    const runs = await Promise.all(
      [1, 2, 3, 4].map(
        () =>
          new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
            const child = spawn(process.execPath, [script, cacheDir]);
            let out = '';
            let err = '';
            child.stdout.on('data', (d: Buffer) => (out += d.toString()));
            child.stderr.on('data', (d: Buffer) => (err += d.toString()));
            child.on('close', (code) => resolve({ code, out, err }));
          }),
      ),
    );
    for (const r of runs) {
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out.trim()).toBe(join(cacheDir, 'debs', 'duktape-dev_amd64'));
    }
    const dir = join(cacheDir, 'debs', 'duktape-dev_amd64');
    expect(readFileSync(join(dir, 'usr/share/duktape/duktape.c'), 'utf8')).toMatch(/Duktape/);
    // No temp or stale folders are left behind.
    const leftovers = execFileSync('ls', ['-A', join(cacheDir, 'debs')], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(leftovers.filter((f) => f.startsWith('.tmp-') || f.includes('.stale-'))).toEqual([]);
  });

  it('names a missing package and says how to fix apt', async () => {
    const e = await rejection(fetchDeb('signet-no-such-package', 'arm64', { cacheDir: join(scratch, 'missing') }));
    expect(e.code).toBe('E_DEB_MISSING');
    expect(e.name).toBe('DebianError');
    expect(e.message).toContain('signet-no-such-package:arm64');
    expect(e.message).toMatch(/apt-get update/);
    expect(e.message).not.toContain('\n');
    expect(existsSync(join(scratch, 'missing', 'debs', 'signet-no-such-package_arm64'))).toBe(false);
  });

  it('rejects names that are not Debian package names', async () => {
    const e = await rejection(fetchDeb('../etc', 'amd64', { cacheDir: join(scratch, 'bad') }));
    expect(e.code).toBe('E_DEB_MISSING');
  });
});

describe('resolveMeta', () => {
  let cloudArm64: Promise<string> | undefined;
  const resolveCloudArm64 = () => (cloudArm64 ??= resolveMeta('linux-image-cloud-arm64', 'arm64'));

  /** What the meta package points at, read independently with apt-cache depends. */
  function dependsTarget(meta: string, arch: string): string {
    const line = apt(['depends', `${meta}:${arch}`])
      .split('\n')
      .find((l) => /^\s+Depends: linux-image-\d/.test(l));
    expect(line).toBeDefined();
    return line!.trim().replace(/^Depends: /, '').replace(/:.*$/, '');
  }

  it('resolves linux-image-cloud-arm64 to the unsigned twin of its signed kernel', async () => {
    const name = await resolveCloudArm64();
    expect(name).toMatch(/^linux-image-\d+\.\d+\.\d+-\d+-cloud-arm64-unsigned$/);
    const target = dependsTarget('linux-image-cloud-arm64', 'arm64');
    expect(apt(['show', '--no-all-versions', `${target}:arm64`])).toMatch(/^Source: linux-signed-arm64/m);
    expect(name).toBe(`${target}-unsigned`);
    expect(apt(['show', '--no-all-versions', `${name}:arm64`])).toMatch(/^Source: linux( |$)/m);
  });

  it('resolves linux-image-armmp to its versioned kernel package', async () => {
    const name = await resolveMeta('linux-image-armmp', 'armhf');
    expect(name).toMatch(/^linux-image-\d+\.\d+\.\d+-\d+-armmp$/);
    expect(name).toBe(dependsTarget('linux-image-armmp', 'armhf'));
  });

  it('accepts an already versioned kernel name', async () => {
    const unsigned = await resolveCloudArm64();
    const signed = unsigned.replace(/-unsigned$/, '');
    expect(await resolveMeta(signed, 'arm64')).toBe(unsigned);
    expect(await resolveMeta(unsigned, 'arm64')).toBe(unsigned);
  });

  it('refuses a package that is not a kernel meta package', async () => {
    const e = await rejection(resolveMeta('duktape-dev', 'amd64'));
    expect(e.code).toBe('E_DEB_NOT_META');
  });

  it('reports a missing meta package as E_DEB_MISSING', async () => {
    const e = await rejection(resolveMeta('linux-image-signet-nonexistent', 'armhf'));
    expect(e.code).toBe('E_DEB_MISSING');
    expect(e.message).toContain('linux-image-signet-nonexistent:armhf');
  });
});
