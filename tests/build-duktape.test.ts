// The device engine itself: bundles run on Duktape 2.7 (Debian's libduktape, as the boot stage
// embeds it), and the engine profile in sdk/build/engine.ts is measured against it, so the list
// of what Signet refuses stays exactly what the engine lacks. Skipped where cc or duktape-dev
// is not installed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleService } from '../sdk/build/bundle';
import { DUKTAPE_ES5, DUKTAPE_LIB_DTS } from '../sdk/build/engine';
import { buildDuktapeRunner, hasDuktape } from './helpers/duktape';
import { skipUnlessCi } from './helpers/tools';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

const HOST_PRELUDE = `var __signet_host = {
  board: 'qemu-virt-arm64', version: '1.0.0',
  log: function (line) { print(line); },
  confirm: function () { print('app[CONFIRM]'); }
};`;

describe.skipIf(skipUnlessCi(hasDuktape()))('on Duktape 2.7', () => {
  let dir: string;
  let runner: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'signet-duk-'));
    runner = buildDuktapeRunner(dir);
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  let n = 0;
  function duk(...sources: string[]): { stdout: string; stderr: string; status: number | null } {
    const files = sources.map((s) => {
      const f = join(dir, 'f' + n++ + '.js');
      writeFileSync(f, s);
      return f;
    });
    const r = spawnSync(runner, files, { encoding: 'utf8' });
    return { stdout: r.stdout, stderr: r.stderr, status: r.status };
  }

  function nodeWithHost(code: string): string {
    const r = spawnSync(process.execPath, ['-'], {
      input: HOST_PRELUDE.replace('print(line)', 'console.log(line)').replace("print('app[CONFIRM]')", "console.log('app[CONFIRM]')") + '\n' + code,
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    return r.stdout;
  }

  it('runs the examples/hello bundle with the same output as Node', async () => {
    const b = await bundleService({ projectDir: join(repoRoot, 'examples/hello'), entry: 'src/main.ts', engine: 'duktape-es5' });
    const r = duk(HOST_PRELUDE, b.code);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello from signet\napp[CONFIRM]\n');
    expect(r.stdout).toBe(nodeWithHost(b.code));
  });

  it('runs lowered classes, spread, destructuring and helpers the same as Node', async () => {
    const proj = mkdtempSync(join(dir, 'proj-'));
    writeFileSync(join(proj, 'main.ts'), `import { log } from 'signet/runtime';
class Counter {
  private n = 0;
  constructor(private readonly step: number) {}
  next(): number { this.n += this.step; return this.n; }
}
class Twice extends Counter {
  constructor() { super(2); }
  override next(): number { return super.next() * 10; }
}
const c = new Twice();
const [a, b, ...more] = [c.next(), c.next(), c.next(), c.next()];
const o = { ...{ x: 1 }, y: \`\${a}-\${b}\` };
const { x, ...others } = o;
const bytes = new TextEncoder().encode('héllo');
const tail = bytes.subarray(1);
log([a, b, more.length, x, JSON.stringify(others), bytes.length, tail[0], 'abc'.startsWith('a'), Object.assign({}, { k: 1 }).k].join(' '));
for (const s of ['p', 'q']) log(s.repeat(2));
`);
    const b = await bundleService({ projectDir: proj, entry: 'main.ts', engine: 'duktape-es5' });
    const r = duk(HOST_PRELUDE, b.code);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('20 40 2 1 {"y":"20-40"} 6 195 true 1\npp\nqq\n');
    expect(r.stdout).toBe(nodeWithHost(b.code));
  });

  it('lacks every global, static and typed-array method the profile refuses', () => {
    const probes = [
      ...DUKTAPE_ES5.missingGlobals.map((g) => `print('${g} ' + typeof ${g});`),
      ...DUKTAPE_ES5.missingStatics.map((s) => `print('${s} ' + typeof ${s});`),
    ];
    for (const [iface, members] of Object.entries(DUKTAPE_ES5.missingLibMembers)) {
      const target = iface.endsWith('Constructor') ? iface.slice(0, -'Constructor'.length) : 'new ' + iface + '(1)';
      for (const m of members) probes.push(`print('${iface}.${m} ' + typeof (${target})['${m}']);`);
    }
    const r = duk(probes.join('\n'));
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(probes.length);
    for (const l of lines) expect(l).toMatch(/ undefined$/);
  });

  it('has everything the profile does not refuse: ES5 built-ins the checks rely on and the declared extras', () => {
    // Members declared in DUKTAPE_LIB_DTS must exist, or the type check would allow a crash.
    const sf = ts.createSourceFile('engine.d.ts', DUKTAPE_LIB_DTS, ts.ScriptTarget.ES5);
    const probes: string[] = [];
    const target: Record<string, string> = {
      ObjectConstructor: 'Object', String: "''", StringConstructor: 'String', NumberConstructor: 'Number', Math: 'Math',
      TextEncoder: 'new TextEncoder()', TextDecoder: 'new TextDecoder()',
    };
    sf.forEachChild((node) => {
      // Error.cause is declared as an ordinary property code assigns itself, not a built-in.
      if (ts.isInterfaceDeclaration(node) && node.name.text !== 'Error') {
        for (const m of node.members) {
          const name = m.name && ts.isIdentifier(m.name) ? m.name.text : undefined;
          if (name) probes.push(`print('${node.name.text}.${name} ' + typeof (${target[node.name.text]})['${name}']);`);
        }
      }
    });
    // Typed arrays keep what the profile does not list.
    for (const m of ['set', 'subarray', 'length', 'byteLength', 'byteOffset', 'buffer']) probes.push(`print('Uint8Array.${m} ' + typeof new Uint8Array(1)['${m}']);`);
    for (const g of ['Symbol', 'Reflect', 'Proxy', 'ArrayBuffer', 'DataView', 'Float64Array']) probes.push(`print('${g} ' + typeof ${g});`);
    expect(probes.length).toBeGreaterThan(30);
    const r = duk(probes.join('\n'));
    expect(r.stderr).toBe('');
    for (const l of r.stdout.trim().split('\n')) expect(l).not.toMatch(/ undefined$/);
  });

  it('really fails on what the checks refuse (so the refusal is not over-cautious)', () => {
    // An async function lowered by TypeScript needs Promise; a lowered regex flag throws.
    const awaiter = ts.transpileModule('async function f() { await 1; }\nf();\n', { compilerOptions: { target: ts.ScriptTarget.ES5 } }).outputText;
    expect(duk(awaiter).stderr).toMatch(/Promise/);
    expect(duk('new RegExp("a.b", "s");').stderr).toMatch(/SyntaxError/);
    expect(duk('new Uint8Array(2).slice(1);').stderr).toMatch(/TypeError/);
  });
});
