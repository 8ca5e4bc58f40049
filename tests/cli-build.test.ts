/** signet init / build / tcb as a user runs them, including broken projects. */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, ROOT, signet } from './helpers/cli';

let work: string;
const EPOCH = { SOURCE_DATE_EPOCH: '1767225600' };

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'signet-build-'));
  expect(signet(['keys', 'init', '--dir', join(work, 'keys')]).code).toBe(0);
});

const build = (project: string, out: string, extra: string[] = [], env = EPOCH) =>
  signet(['build', '--project', project, '--version', '1.2.0', '--security-counter', '3', '--keys', join(work, 'keys'), '--out', out, ...extra], { env });

function project(name: string, main: string, extra: Record<string, string> = {}): string {
  const dir = join(work, name);
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(join(dir, 'signet.json'), JSON.stringify({ name, board: 'qemu-virt-arm64', entry: 'src/main.ts', assets: [] }));
  writeFileSync(join(dir, 'src', 'main.ts'), main);
  for (const [f, c] of Object.entries(extra)) writeFileSync(join(dir, f), c);
  return dir;
}

describe('signet init', () => {
  it('scaffolds a project that builds, verifies and prints its line', () => {
    const dir = join(work, 'my-svc');
    const r = signet(['init', dir, '--board', 'qemu-virt-arm64']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'signet.json'), 'utf8'))).toMatchObject({ name: 'my-svc', board: 'qemu-virt-arm64', entry: 'src/main.ts' });
    const out = join(work, 'my.simg');
    expect(build(dir, out).code).toBe(0);
    expect(signet(['verify', out, '--root', join(work, 'keys', 'root.json'), '--board', 'qemu-virt-arm64']).code).toBe(0);
  });
  it('refuses an unknown board and a non-empty folder', () => {
    const r = signet(['init', join(work, 'x'), '--board', 'nope']);
    expectOneLineError(r, 'E_BOARD_UNKNOWN');
    expect(existsSync(join(work, 'x'))).toBe(false);
    expectOneLineError(signet(['init', join(work, 'my-svc'), '--board', 'qemu-virt-arm64']), 'E_EXISTS');
  });
});

describe('signet build', () => {
  it('builds examples/hello reproducibly (same inputs and SOURCE_DATE_EPOCH → same bytes)', () => {
    const a = join(work, 'a.simg');
    const b = join(work, 'b.simg');
    expect(build(join(ROOT, 'examples/hello'), a).code).toBe(0);
    expect(build(join(ROOT, 'examples/hello'), b).code).toBe(0);
    expect(Buffer.compare(readFileSync(a), readFileSync(b))).toBe(0);
    const j = JSON.parse(signet(['inspect', a, '--json']).stdout);
    expect(j.manifest).toMatchObject({ name: 'hello', board: 'qemu-virt-arm64', engine: 'duktape-es5', buildTime: 1767225600, securityCounter: 3 });
    expect(j.manifest.dependencies.map((d: { name: string }) => d.name)).toContain('signet/runtime/index.ts');
  });

  it('a type error is reported with file:line and no image is written', () => {
    const dir = project('typeerr', "import { log } from 'signet/runtime';\nconst n: number = 'five';\nlog(String(n));\n");
    const out = join(work, 'typeerr.simg');
    const r = build(dir, out);
    expectOneLineError(r, 'E_BUILD_TYPE');
    expect(r.stderr).toMatch(/src\/main\.ts:2:\d+/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(work).filter((f) => f.startsWith('.signet-tmp-'))).toEqual([]);
  });
  it('a missing import is reported with file:line', () => {
    const dir = project('missing', "import { nothing } from './nowhere';\nnothing();\n");
    const r = build(dir, join(work, 'missing.simg'), ['--no-typecheck']);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^error\[E_BUILD[A-Z_]*\]: .*src\/main\.ts:1:\d+/);
    expect(existsSync(join(work, 'missing.simg'))).toBe(false);
  });
  it('broken signet.json, missing key, bad version are one-line errors', () => {
    const dir = project('badjson', 'export {};\n');
    writeFileSync(join(dir, 'signet.json'), '{"name": "badjson",');
    expectOneLineError(build(dir, join(work, 'bad.simg')), 'E_PROJECT_JSON');
    expectOneLineError(build(join(work, 'nowhere'), join(work, 'bad.simg')), 'E_PROJECT_MISSING');
    expectOneLineError(signet(['build', '--project', join(ROOT, 'examples/hello'), '--version', '1.2', '--security-counter', '1', '--keys', join(work, 'keys'), '--out', join(work, 'v.simg')]), 'E_USAGE');
    expectOneLineError(signet(['build', '--project', join(ROOT, 'examples/hello'), '--version', '1.2.0', '--security-counter', '-1', '--keys', join(work, 'keys'), '--out', join(work, 'v.simg')]), 'E_USAGE');
    expectOneLineError(signet(['build', '--project', join(ROOT, 'examples/hello'), '--version', '1.2.0', '--security-counter', '1', '--key', join(work, 'nokey.key'), '--out', join(work, 'v.simg')]), 'E_KEY_FILE');
    expect(existsSync(join(work, 'bad.simg')) || existsSync(join(work, 'v.simg'))).toBe(false);
  });
});

describe('signet tcb', () => {
  it('reports modules, diffs against an older image and writes an HTML treemap', () => {
    const older = join(work, 'older.simg');
    expect(build(join(ROOT, 'examples/hello'), older).code).toBe(0);
    const dir = project('grown', "import { log, confirm } from 'signet/runtime';\nimport { helper } from './helper';\nlog(helper('hello'));\nconfirm();\n",
      { 'src/helper.ts': "export function helper(s: string): string { return s + ' from a helper module'; }\n" });
    const newer = join(work, 'newer.simg');
    expect(build(dir, newer).code).toBe(0);
    const r = signet(['tcb', newer, '--vs', older, '--json', '--html', join(work, 'tcb.html')]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.report.modules.map((m: { name: string }) => m.name)).toEqual(expect.arrayContaining(['src/main.ts', 'src/helper.ts', 'signet/runtime/index.ts']));
    expect(j.diff.added.map((m: { name: string }) => m.name)).toContain('src/helper.ts');
    const html = readFileSync(join(work, 'tcb.html'), 'utf8');
    expect(html).toContain('<html');
    expect(html).toContain('src/helper.ts');
    // Neither an app image, a boot image nor a disk image (sdk/disk/boot-tcb-file).
    expectOneLineError(signet(['tcb', join(ROOT, 'package.json')]), 'E_TCB_INPUT_KIND');
  });
});
