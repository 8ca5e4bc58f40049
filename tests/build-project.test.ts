// sdk/build/project (signet.json) and sdk/build/scaffold (`signet init`), on real files.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleService } from '../sdk/build/bundle';
import { BuildError } from '../sdk/build/errors';
import { readProject, validateProjectConfig } from '../sdk/build/project';
import { scaffoldProject } from '../sdk/build/scaffold';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'signet-project-'));
});
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

let n = 0;
function projectWith(json: string | null, files: string[] = ['src/main.ts']): string {
  const dir = join(scratch, 'p' + n++);
  mkdirSync(dir, { recursive: true });
  if (json !== null) writeFileSync(join(dir, 'signet.json'), json);
  for (const f of files) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), '');
  }
  return dir;
}

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BuildError);
    return (e as BuildError).code;
  }
  throw new Error('expected a BuildError');
}

const good = { name: 'hello', board: 'qemu-virt-arm64', entry: 'src/main.ts', assets: [] as string[] };

describe('readProject', () => {
  it('reads a valid signet.json and resolves entry and assets', () => {
    const dir = projectWith(JSON.stringify({ ...good, assets: ['www/index.html'] }), ['src/main.ts', 'www/index.html']);
    const p = readProject(dir);
    expect(p).toMatchObject({ name: 'hello', board: 'qemu-virt-arm64', entry: 'src/main.ts', assets: ['www/index.html'], dir });
    expect(p.entryPath).toBe(join(dir, 'src/main.ts'));
    expect(p.assetPaths).toEqual([join(dir, 'www/index.html')]);
  });

  it('takes assets as optional', () => {
    const { assets: _unused, ...noAssets } = good;
    expect(readProject(projectWith(JSON.stringify(noAssets))).assets).toEqual([]);
  });

  it('fails closed with a typed error for each way signet.json can be wrong', () => {
    expect(codeOf(() => readProject(projectWith(null)))).toBe('E_PROJECT_MISSING');
    expect(codeOf(() => readProject(projectWith('{"name": "hello",')))).toBe('E_PROJECT_JSON');
    expect(codeOf(() => readProject(projectWith('[]')))).toBe('E_PROJECT_FIELD');
    expect(codeOf(() => readProject(projectWith(JSON.stringify({ ...good, entrypoint: 'src/main.ts' }))))).toBe('E_PROJECT_FIELD');
    const { entry: _e, ...noEntry } = good;
    expect(codeOf(() => readProject(projectWith(JSON.stringify(noEntry))))).toBe('E_PROJECT_FIELD');
    expect(codeOf(() => readProject(projectWith(JSON.stringify({ ...good, name: 'Hello World' }))))).toBe('E_PROJECT_FIELD');
    expect(codeOf(() => readProject(projectWith(JSON.stringify({ ...good, board: 7 }))))).toBe('E_PROJECT_FIELD');
    expect(codeOf(() => readProject(projectWith(JSON.stringify({ ...good, entry: '../outside.ts' }))))).toBe('E_PROJECT_FIELD');
    expect(codeOf(() => readProject(projectWith(JSON.stringify({ ...good, entry: '/abs/main.ts' }))))).toBe('E_PROJECT_FIELD');
    expect(codeOf(() => readProject(projectWith(JSON.stringify({ ...good, entry: 'src/main.py' }))))).toBe('E_PROJECT_FIELD');
    expect(codeOf(() => readProject(projectWith(JSON.stringify({ ...good, assets: ['a', 'a'] }), ['src/main.ts', 'a'])))).toBe('E_PROJECT_FIELD');
    expect(codeOf(() => readProject(projectWith(JSON.stringify({ ...good, assets: 'a' }))))).toBe('E_PROJECT_FIELD');
    expect(codeOf(() => readProject(projectWith(JSON.stringify(good), [])))).toBe('E_PROJECT_ENTRY');
    expect(codeOf(() => readProject(projectWith(JSON.stringify({ ...good, assets: ['missing.bin'] }))))).toBe('E_PROJECT_ENTRY');
  });

  it('says which field is wrong, in one line', () => {
    try {
      validateProjectConfig({ ...good, entrypoint: 'x' });
      throw new Error('not refused');
    } catch (e) {
      expect((e as BuildError).line()).toBe('error[E_PROJECT_FIELD]: signet.json: unknown field "entrypoint" — signet.json takes exactly: name, board, entry, assets');
    }
  });
});

describe('scaffoldProject', () => {
  it('writes a project that reads back, builds for the device and prints its line', async () => {
    const dir = join(scratch, 'new-service');
    const config = await scaffoldProject(dir, { name: 'thermostat', board: 'xen-arm32' });
    expect(config).toEqual({ name: 'thermostat', board: 'xen-arm32', entry: 'src/main.ts', assets: [] });
    expect(JSON.parse(readFileSync(join(dir, 'signet.json'), 'utf8'))).toEqual(config);
    expect(readdirSync(dir).sort()).toEqual(['signet-env.d.ts', 'signet.json', 'src', 'tsconfig.json']);
    expect(statSync(dir).mode & 0o777).toBe(0o777 & ~process.umask());
    expect(readProject(dir).name).toBe('thermostat');

    const b = await bundleService({ projectDir: dir, entry: config.entry, engine: 'duktape-es5' });
    const r = spawnSync(process.execPath, ['-'], { input: b.code, encoding: 'utf8' });
    expect(r.stdout).toBe('hello from thermostat\napp[CONFIRM] (no host)\n');

    // The editor tsconfig type-checks the same source with the SDK mapped in.
    const tsc = spawnSync(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json')], { encoding: 'utf8' });
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
  });

  it('fills an existing empty folder', async () => {
    const dir = join(scratch, 'empty-one');
    mkdirSync(dir);
    await scaffoldProject(dir, { name: 'svc', board: 'qemu-virt-arm64' });
    expect(existsSync(join(dir, 'src/main.ts'))).toBe(true);
  });

  it('refuses a non-empty folder (E_EXISTS) and leaves it as it was', async () => {
    const dir = join(scratch, 'busy');
    mkdirSync(dir);
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    const e = await scaffoldProject(dir, { name: 'svc', board: 'qemu-virt-arm64' }).then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(BuildError);
    expect((e as BuildError).code).toBe('E_EXISTS');
    expect(readdirSync(dir)).toEqual(['notes.txt']);
  });

  it('refuses a bad name or board before writing anything', async () => {
    const dir = join(scratch, 'never');
    for (const opts of [{ name: 'Bad Name', board: 'qemu-virt-arm64' }, { name: 'ok', board: 'Board_1' }]) {
      const e = await scaffoldProject(dir, opts).then(() => undefined, (x: unknown) => x);
      expect((e as BuildError).code).toBe('E_PROJECT_FIELD');
    }
    expect(existsSync(dir)).toBe(false);
    expect(readdirSync(scratch).filter((f) => f.startsWith('.signet-tmp-'))).toEqual([]);
  });
});
