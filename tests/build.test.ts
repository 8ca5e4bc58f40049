// sdk/build/bundle: real esbuild, real TypeScript, real Node running the bundles.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as acorn from 'acorn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE_WRAPPER_NAME, bundleService, type BundleResult } from '../sdk/build/bundle';
import { BuildError } from '../sdk/build/errors';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const hello = join(repoRoot, 'examples/hello');

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'signet-build-'));
});
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

let counter = 0;
function project(files: Record<string, string>): string {
  const dir = join(scratch, 'p' + counter++);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** Run a bundle as a script in a fresh Node process and return its stdout lines. */
function run(code: string): string[] {
  const r = spawnSync(process.execPath, ['-'], { input: code, encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout.split('\n').filter((l) => l !== '');
}

function isEs5(code: string): boolean {
  acorn.parse(code, { ecmaVersion: 5, sourceType: 'script' });
  return true;
}

async function failure(p: Promise<unknown>): Promise<BuildError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(BuildError);
  return e as BuildError;
}

function totalBytes(r: BundleResult): number {
  return r.modules.reduce((s, m) => s + m.bytes, 0);
}

describe('bundling examples/hello', () => {
  let es5: BundleResult;
  let node: BundleResult;
  beforeAll(async () => {
    es5 = await bundleService({ projectDir: hello, entry: 'src/main.ts', engine: 'duktape-es5' });
    node = await bundleService({ projectDir: hello, entry: 'src/main.ts', engine: 'node' });
  });

  it('yields ES5 that acorn accepts for duktape-es5, and a bundle for node that is not held to ES5', () => {
    expect(es5.engine).toBe('duktape-es5');
    expect(isEs5(es5.code)).toBe(true);
    expect(node.engine).toBe('node');
    expect(() => isEs5(node.code)).toThrow(); // the node bundle uses an arrow IIFE: ES2015+
  });

  it('holds only the modules it imports, with stable names', () => {
    expect(es5.modules.map((m) => [m.name, m.kind])).toEqual([
      [BUNDLE_WRAPPER_NAME, 'sdk'],
      ['signet/runtime/index.ts', 'sdk'],
      ['src/main.ts', 'app'],
    ]);
    // Nothing of the rest of the SDK (image, keys, build...) is in the image.
    expect(es5.code).not.toMatch(/sdk:signet\/(image|keys|build|util)/);
    for (const m of es5.modules) expect(m.bytes).toBeGreaterThan(0);
  });

  it('accounts for every byte: module bytes add up to the bundle size', () => {
    expect(totalBytes(es5)).toBe(Buffer.byteLength(es5.code));
    expect(totalBytes(node)).toBe(Buffer.byteLength(node.code));
  });

  it('prints the same on Node whether lowered to ES5 or not (no host: console.log fallback)', () => {
    const lowered = run(es5.code);
    expect(lowered).toEqual(['hello from signet', 'app[CONFIRM] (no host)']);
    expect(run(node.code)).toEqual(lowered);
  });

  it('gives the same bytes wherever the project and SDK are checked out', async () => {
    const deep = join(scratch, 'a', 'b', 'c', 'hello');
    cpSync(hello, deep, { recursive: true });
    const copy = await bundleService({ projectDir: deep, entry: 'src/main.ts', engine: 'duktape-es5' });
    expect(copy.code).toBe(es5.code);
    expect(copy.modules).toEqual(es5.modules);
    expect(copy.code).not.toContain(scratch);
    expect(copy.code).not.toContain(repoRoot);
  });

  it('minifies on request, still ES5 and still the same output', async () => {
    const min = await bundleService({ projectDir: hello, entry: 'src/main.ts', engine: 'duktape-es5', minify: true });
    expect(min.code.length).toBeLessThan(es5.code.length);
    expect(isEs5(min.code)).toBe(true);
    expect(totalBytes(min)).toBe(Buffer.byteLength(min.code));
    expect(run(min.code)).toEqual(run(es5.code));
  });
});

describe('lowering modern TypeScript to ES5', () => {
  const fancy = {
    'src/main.ts': `import { log, confirm } from 'signet/runtime';
import { Shape, Square, Circle } from './shapes';
import type { Named } from './types';

const shapes: Shape[] = [new Square(2), new Circle(1), new Square(3)];
const [first, ...rest] = shapes;
const areas = shapes.map((s) => Math.round(s.area() * 100) / 100);
const total = [...areas, 1].reduce((a, b) => a + b, 0);
const { name, ...others } = { name: 'x', a: 1, b: 2 };
const who: Named = { name: \`n-\${name}\` };
log(\`first=\${first.area()} rest=\${rest.length} total=\${total} \${who.name} \${JSON.stringify(others)}\`);
for (const s of shapes) log(s.describe());
let n = 0;
for (let i = 0; i < 4; i++) n += i ** 2;
const fns: (() => number)[] = [];
for (let i = 0; i < 3; i++) fns.push(() => i * 10);
log('n=' + n + ' closures=' + fns.map((f) => f()).join(','));
const merged = { ...others, c: 3, [\`k\${n}\`]: true };
log(Object.keys(merged).join(','));
const label = (x?: { y?: string }) => x?.y ?? 'none';
log(label() + ' ' + label({ y: 'set' }));
enum Colour { Red = 1, Green }
log('green=' + Colour.Green + ' ' + Colour[1]);
const bytes = new Uint8Array([1, 2, 3, 4]).subarray(1, 3);
log('bytes=' + bytes.length + ':' + bytes[0]);
confirm();
`,
    'src/shapes.ts': `export abstract class Shape {
  static count = 0;
  constructor() { Shape.count++; }
  abstract area(): number;
  describe(): string { return \`\${this.kind()} #\${Shape.count} area \${this.area().toFixed(2)}\`; }
  protected kind(): string { return 'shape'; }
}
export class Square extends Shape {
  constructor(private readonly side: number) { super(); }
  area(): number { return this.side * this.side; }
  protected override kind(): string { return 'square'; }
}
export class Circle extends Shape {
  private r: number;
  constructor(r: number) { super(); this.r = r; }
  get radius(): number { return this.r; }
  area(): number { return Math.PI * this.r * this.r; }
  override describe(): string { return 'circle(' + this.radius + '): ' + super.describe(); }
}
export class NeverUsed { x = 1; }
`,
    'src/types.ts': 'export interface Named { name: string }\n',
    'src/unused.ts': "export const notImported = 'this file is not imported';\n",
  };

  it('lowers class, accessors, arrows, template strings, spread, destructuring, enums, ?. and ??', async () => {
    const dir = project(fancy);
    const es5 = await bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5' });
    expect(isEs5(es5.code)).toBe(true);
    const node = await bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'node' });
    const out = run(es5.code);
    expect(out).toEqual(run(node.code));
    expect(out[0]).toBe('first=4 rest=2 total=17.14 n-x {"a":1,"b":2}');
    expect(out).toContain('n=14 closures=0,10,20');
    expect(out[out.length - 1]).toBe('app[CONFIRM] (no host)');
  });

  it('leaves out files that are not imported and files imported only for types', async () => {
    const dir = project(fancy);
    const r = await bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5' });
    const names = r.modules.map((m) => m.name);
    expect(names).toEqual([BUNDLE_WRAPPER_NAME, 'signet/runtime/index.ts', 'src/main.ts', 'src/shapes.ts']);
    expect(r.code).not.toContain('this file is not imported');
    expect(r.code).not.toContain('NeverUsed');
    expect(totalBytes(r)).toBe(Buffer.byteLength(r.code));
  });

  it('bundles third-party packages (ESM and CommonJS) lowered, named by package path', async () => {
    const dir = project({
      'src/main.ts': `import { log } from 'signet/runtime';
import { pad } from 'tiny-pad';
import legacy from 'legacy-cjs';
log(pad('7', 3) + ' ' + legacy.twice(21));
`,
      'node_modules/tiny-pad/package.json': '{"name":"tiny-pad","version":"1.0.0","module":"index.js","types":"index.d.ts"}',
      'node_modules/tiny-pad/index.js': "export const pad = (s, n, c = '0') => { let out = `${s}`; while (out.length < n) out = c + out; return out; };\n",
      'node_modules/tiny-pad/index.d.ts': 'export declare function pad(s: string, n: number, c?: string): string;\n',
      'node_modules/legacy-cjs/package.json': '{"name":"legacy-cjs","version":"1.0.0","main":"lib/main.js","types":"lib/main.d.ts"}',
      'node_modules/legacy-cjs/lib/main.js': "'use strict';\nexports.twice = function (x) { return x * 2; };\n",
      'node_modules/legacy-cjs/lib/main.d.ts': 'declare const legacy: { twice(x: number): number };\nexport default legacy;\n',
    });
    const r = await bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5' });
    expect(isEs5(r.code)).toBe(true);
    const third = r.modules.filter((m) => m.kind === 'third-party').map((m) => m.name);
    expect(third).toEqual(['legacy-cjs/lib/main.js', 'tiny-pad/index.js']);
    expect(run(r.code)).toEqual(['007 42']);
    expect(totalBytes(r)).toBe(Buffer.byteLength(r.code));
  });

  it('applies define', async () => {
    const dir = project({
      'src/main.ts': "import { log } from 'signet/runtime';\ndeclare const BUILD_ID: string;\nlog('build ' + BUILD_ID);\n",
    });
    const r = await bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5', define: { BUILD_ID: '"abc123"' } });
    expect(run(r.code)).toEqual(['build abc123']);
  });
});

describe('refusing what the engine cannot run', () => {
  it('runs async/await on duktape-es5 with the runtime\'s Promise, injected only where Promise is used', async () => {
    const dir = project({
      'src/main.ts': "import { log } from 'signet/runtime';\n\nasync function main(): Promise<void> {\n  await null;\n  log('done');\n}\nmain();\nlog('first');\n",
    });
    for (const typecheck of [true, false]) {
      const r = await bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5', typecheck });
      expect(isEs5(r.code)).toBe(true);
      expect(r.modules.map((m) => m.name)).toContain('signet/runtime/promise.ts');
      // No engine Promise is used: the bundle runs where there is none (Node's is deleted first).
      expect(run('delete globalThis.Promise;\n' + r.code)).toEqual(['first', 'done']);
    }
    // Node has its own: nothing is injected for the node engine, nor where Promise is not used.
    const ok = await bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'node' });
    expect(ok.modules.map((m) => m.name)).not.toContain('signet/runtime/promise.ts');
    expect(run(ok.code)).toEqual(['first', 'done']);
    const plain = await bundleService({ projectDir: project({ 'src/main.ts': "import { log } from 'signet/runtime';\nlog('x');\n" }), entry: 'src/main.ts', engine: 'duktape-es5' });
    expect(plain.modules.map((m) => m.name)).toEqual([BUNDLE_WRAPPER_NAME, 'signet/runtime/index.ts', 'src/main.ts']);
  });

  it('refuses Map and WeakMap with the line of the use', async () => {
    const dir = project({
      'src/main.ts': "import { log } from 'signet/runtime';\n\nconst seen = new Map<string, number>();\nseen.set('a', 1);\nlog(String(seen.size));\n",
    });
    const e = await failure(bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5' }));
    expect(e.code).toBe('E_ENGINE_FEATURE');
    expect(e.details).toMatchObject({ feature: 'Map', module: 'src/main.ts', file: 'src/main.ts', line: 3 });

    const dir2 = project({
      'src/lib.ts': "export function later(f: () => void): void {\n  new WeakMap<object, number>().set(f, 1);\n}\n",
      'src/main.ts': "import { later } from './lib';\nimport { log } from 'signet/runtime';\nlater(() => log('x'));\n",
    });
    const e2 = await failure(bundleService({ projectDir: dir2, entry: 'src/main.ts', engine: 'duktape-es5', typecheck: false }));
    expect(e2.details).toMatchObject({ feature: 'WeakMap', module: 'src/lib.ts', line: 2 });
  });

  it('allows a global that is only probed with typeof, and a local that shadows a missing global', async () => {
    const dir = project({
      'src/main.ts': `import { log } from 'signet/runtime';
const hasPromise = typeof Promise !== 'undefined';
function make(Map: { create(): string }): string { return Map.create(); }
log(hasPromise + ' ' + make({ create: () => 'local' }));
`,
    });
    const r = await bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5' });
    expect(run(r.code)).toEqual(['true local']);
  });

  it('refuses typed-array methods Duktape lacks, found with types (E_ENGINE_FEATURE)', async () => {
    const dir = project({
      'src/main.ts': "import { log } from 'signet/runtime';\n\nconst b = new Uint8Array(4);\nlog(String(b.subarray(1).length));\nlog(String(b.slice(1).length));\n",
    });
    const e = await failure(bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5' }));
    expect(e.code).toBe('E_ENGINE_FEATURE');
    expect(e.details).toMatchObject({ feature: 'Uint8Array.prototype.slice', file: 'src/main.ts', line: 5, column: 14 });
    expect(e.message).toMatch(/^src\/main\.ts:5:14: Uint8Array\.prototype\.slice is not available/);
  });

  it('refuses a regex flag ES5 lacks with E_ENGINE_SYNTAX, module and line (esbuild turns it into new RegExp)', async () => {
    const dir = project({
      'src/main.ts': "import { log } from 'signet/runtime';\n\nconst ok = /a.b/gi;\nconst re = /a.b/s;\nlog(String(ok.test('x') || re.test('a\\nb')));\n",
    });
    const e = await failure(bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5', typecheck: false }));
    expect(e.code).toBe('E_ENGINE_SYNTAX');
    expect(e.details).toMatchObject({ module: 'src/main.ts', line: 4 });
    expect(e.message).toContain('/a.b/s');
  });

  it('refuses what a third-party file needs, naming the package file: BigInt (feature), named groups (syntax)', async () => {
    const dir = project({
      'src/main.ts': "import { log } from 'signet/runtime';\nimport { big } from 'bigint-user';\nlog(String(big()));\n",
      'node_modules/bigint-user/package.json': '{"name":"bigint-user","version":"1.0.0","module":"index.js"}',
      'node_modules/bigint-user/index.js': 'export function big() {\n  return 2n ** 64n;\n}\n',
    });
    const e = await failure(bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5', typecheck: false }));
    expect(e.code).toBe('E_ENGINE_FEATURE');
    expect(e.details).toMatchObject({ feature: 'BigInt', module: 'bigint-user/index.js', line: 2 });

    const dir2 = project({
      'src/main.ts': "import { log } from 'signet/runtime';\nimport { year } from 'dates';\nlog(year('2024-01-01'));\n",
      'node_modules/dates/package.json': '{"name":"dates","version":"1.0.0","main":"index.js"}',
      'node_modules/dates/index.js': "'use strict';\n\nexports.year = function (s) {\n  return /(?<year>\\d{4})/.exec(s).groups.year;\n};\n",
    });
    const e2 = await failure(bundleService({ projectDir: dir2, entry: 'src/main.ts', engine: 'duktape-es5', typecheck: false }));
    expect(e2.code).toBe('E_ENGINE_SYNTAX');
    expect(e2.details).toMatchObject({ module: 'dates/index.js', line: 4 });
  });
});

describe('build errors a vendor can act on', () => {
  it('reports a type error as E_BUILD_TYPE with file:line:col relative to the project', async () => {
    const dir = project({
      'src/main.ts': "import { log } from 'signet/runtime';\n\nconst n: number = 'not a number';\nlog(String(n));\n",
    });
    const e = await failure(bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5' }));
    expect(e.code).toBe('E_BUILD_TYPE');
    expect(e.message).toMatch(/^src\/main\.ts:3:7: Type 'string' is not assignable to type 'number'\./);
    expect(e.details).toMatchObject({ file: 'src/main.ts', line: 3, column: 7 });
    expect(e.line()).not.toContain(dir);
    // Without the type check the same code bundles: the check is what refused it.
    await bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5', typecheck: false });
  });

  it('type-checks against the engine: console is not a Duktape global', async () => {
    const dir = project({ 'src/main.ts': "console.log('hi');\n" });
    const e = await failure(bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5' }));
    expect(e.code).toBe('E_BUILD_TYPE');
    expect(e.message).toMatch(/^src\/main\.ts:1:1: Cannot find name 'console'/);
  });

  it('reports a missing import as E_BUILD_RESOLVE with file:line, with and without the type check', async () => {
    const dir = project({
      'src/main.ts': "import { log } from 'signet/runtime';\nimport { helper } from './nope';\n\nlog(helper());\n",
    });
    for (const typecheck of [true, false]) {
      const e = await failure(bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5', typecheck }));
      expect(e.code).toBe('E_BUILD_RESOLVE');
      expect(e.details).toMatchObject({ file: 'src/main.ts', line: 2 });
      expect(e.message).toMatch(/^src\/main\.ts:2:\d+: .*\.\/nope/);
    }
  });

  it('reports the original line of a missing import when TypeScript put helpers above it', async () => {
    const dir = project({
      'src/main.ts': "import { log } from 'signet/runtime';\n\nclass A {}\nclass B extends A {}\nconst o = { ...{ a: 1 } };\nimport { nope } from './missing';\nlog(String(new B()) + o.a + nope);\n",
    });
    const e = await failure(bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5', typecheck: false }));
    expect(e.code).toBe('E_BUILD_RESOLVE');
    expect(e.details).toMatchObject({ file: 'src/main.ts', line: 6 });
  });

  it('says that a Node.js built-in does not exist on the device', async () => {
    const dir = project({ 'src/main.ts': "import { readFileSync } from 'node:fs';\nreadFileSync('/etc/hostname');\n" });
    const e = await failure(bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5', typecheck: false }));
    expect(e.code).toBe('E_BUILD_RESOLVE');
    expect(e.message).toMatch(/^src\/main\.ts:1:\d+: Could not resolve "node:fs" \(a Node\.js built-in module/);
  });

  it('reports a missing import in the node engine too, and an unknown SDK module', async () => {
    const dir = project({ 'src/main.ts': "import { x } from 'signet/no-such-module';\nx();\n" });
    const e = await failure(bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'node', typecheck: false }));
    expect(e.code).toBe('E_BUILD_RESOLVE');
    expect(e.message).toMatch(/^src\/main\.ts:1:\d+: Could not resolve "signet\/no-such-module"/);
  });

  it('reports a TypeScript syntax error as E_BUILD with file:line', async () => {
    const dir = project({ 'src/main.ts': "import { log } from 'signet/runtime';\nlog('a';\n" });
    const e = await failure(bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5', typecheck: false }));
    expect(e.code).toBe('E_BUILD');
    expect(e.details).toMatchObject({ file: 'src/main.ts', line: 2 });
  });

  it('refuses a missing entry and an unknown engine', async () => {
    const dir = project({ 'src/other.ts': '' });
    expect((await failure(bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5' }))).code).toBe('E_BUILD_RESOLVE');
    expect((await failure(bundleService({ projectDir: dir, entry: 'src/other.ts', engine: 'quickjs' as 'node' }))).code).toBe('E_BUILD');
  });
});
