/**
 * An exception in a service's callback is reported with the service's own file and line, not
 * the bundle's: the build puts a line table (payload app.lines) in the image, the boot stage
 * reads it and the C host asks it for the line (host[ERROR] ... at src/ticker.ts:N), and the
 * restart line names it too (boot[APP-RESTART] ... at=src/ticker.ts:N). The real boot-stage
 * bundle on the host build of the C host, booting a signed image built from TypeScript.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildBootStage } from '../bootloader/build';
import { buildNativeHost } from '../bootloader/native/build';
import { bundleService } from '../sdk/build/bundle';
import { verifyImageFile } from '../sdk/image/file';
import { signet } from './helpers/cli';
import { encodeLineTable, LINE_TABLE_PAYLOAD, lookupLine, makeLineTable, parseLineTable } from '../sdk/build/linetable';
import { utf8Decode, utf8Encode } from '../sdk/util/bytes';
import { newFlash, smallBoard, tempDir } from './helpers/boot';
import { makeImage, makeKeySet, type TestKeySet } from './helpers/fixtures';

const MAIN = `import { confirm, log, timers } from 'signet/runtime';
import { Ticker } from './ticker';

interface Counter { runs: number }
const g = Function('return this')() as { counter?: Counter };
const c: Counter = g.counter || (g.counter = { runs: 0 });
c.runs++;
log('app[run] ' + c.runs);
if (c.runs === 1) confirm();
timers.setTimeout(() => new Ticker('tick', c.runs).tick(), 1);
`;

const TICKER = `import { log } from 'signet/runtime';

/** A class and a template string, so lowering moves lines. */
export class Ticker {
  constructor(private readonly name: string, private readonly run: number) {}

  tick(): void {
    const { name, run } = this;
    if (run <= 2) {
      throw new Error(\`\${name} failed in run \${run}\`);
    }
    log('app[done]');
  }
}
`;

/** 1-based line of the first line containing `needle`. */
function lineOf(text: string, needle: string): number {
  return text.split('\n').findIndex((l) => l.includes(needle)) + 1;
}

let ks: TestKeySet;
let host: string;
let bootJs: string;
let dir: string;
let bundle: Awaited<ReturnType<typeof bundleService>>;

beforeAll(async () => {
  ks = await makeKeySet(1, 1);
  dir = tempDir('signet-error-lines-');
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'main.ts'), MAIN);
  writeFileSync(join(dir, 'src', 'ticker.ts'), TICKER);
  bundle = await bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5' });
  host = await buildNativeHost('host');
  const b = await buildBootStage({ board: smallBoard(), rootJson: utf8Decode(ks.rootBytes)!, testMode: true });
  bootJs = join(dir, 'boot.js');
  writeFileSync(bootJs, b.code);
}, 300_000);

async function boot(withTable: boolean): Promise<{ status: number | null; lines: string[]; errors: string[] }> {
  const assets = withTable ? [{ name: LINE_TABLE_PAYLOAD, type: 'asset' as const, data: utf8Encode(bundle.lineTable) }] : [];
  const image = await makeImage({ version: '1.0.0', securityCounter: 1, app: utf8Encode(bundle.code), assets, signers: [ks.targets[0].signer] });
  const disk = join(dir, `disk-${withTable}.img`);
  writeFileSync(disk, newFlash({ slotA: image, floor: 1 }).bytes);
  const r = spawnSync(host, [bootJs, '--disk', disk, '--restart-backoff-ms', '5'], { encoding: 'utf8', timeout: 60_000 });
  return {
    status: r.status,
    lines: r.stdout.trim().split('\n').filter((l) => /^(app|boot)\[/.test(l) && !l.startsWith('boot[OK]')),
    errors: r.stderr.trim().split('\n').filter((l) => l.startsWith('host[ERROR]')),
  };
}

describe('errors name the service own file and line', () => {
  it('host[ERROR] and boot[APP-RESTART] give src/ticker.ts and the line of the throw', async () => {
    const line = lineOf(TICKER, 'throw new Error');
    expect(line).toBe(10);
    const r = await boot(true);
    expect(r.status).toBe(0);
    expect(r.errors).toEqual([
      `host[ERROR] uncaught in a 'timeout' handler at src/ticker.ts:${line}: Error: tick failed in run 1`,
      `host[ERROR] uncaught in a 'timeout' handler at src/ticker.ts:${line}: Error: tick failed in run 2`,
    ]);
    expect(r.lines).toEqual([
      'app[run] 1',
      `boot[APP-RESTART] slot=a attempt=1 delay_ms=5 at=src/ticker.ts:${line}`,
      'app[run] 2',
      `boot[APP-RESTART] slot=a attempt=2 delay_ms=10 at=src/ticker.ts:${line}`,
      'app[run] 3',
      'app[done]',
      'boot[HALT]',
    ]);
  });

  it('an image without a line table reports the bundle line, which is that line in the bundle', async () => {
    const r = await boot(false);
    const m = /at app\.js:(\d+):/.exec(r.errors[0] ?? '');
    expect(m).not.toBeNull();
    expect(bundle.code.split('\n')[Number(m![1]) - 1]).toContain('throw new Error');
    expect(r.lines[1]).toBe(`boot[APP-RESTART] slot=a attempt=1 delay_ms=5 at=app.js:${m![1]}`);
  });

  it('the table maps every line of the bundle that came from the app to the line it came from', () => {
    const t = parseLineTable(bundle.lineTable)!;
    expect(t).not.toBeNull();
    const bundleLines = bundle.code.split('\n');
    // esbuild prints strings in double quotes.
    const where = lookupLine(t, bundleLines.findIndex((l) => l.includes('log("app[run] " +')) + 1);
    expect(where).toBe('src/main.ts:' + lineOf(MAIN, "log('app[run] ' +"));
    expect(lookupLine(t, bundleLines.findIndex((l) => l.includes('log("app[done]")')) + 1)).toBe('src/ticker.ts:' + lineOf(TICKER, "log('app[done]')"));
  });

  it('signet build puts the table in the image as payload app.lines', () => {
    writeFileSync(join(dir, 'signet.json'), JSON.stringify({ name: 'ticker', board: 'qemu-virt-arm64', entry: 'src/main.ts' }));
    expect(signet(['keys', 'init', '--dir', join(dir, 'keys')]).code).toBe(0);
    const out = join(dir, 'ticker.simg');
    const r = signet(['build', '--project', dir, '--version', '1.0.0', '--security-counter', '1', '--keys', join(dir, 'keys'), '--out', out]);
    expect(r.code).toBe(0);
    const v = verifyImageFile(out, { rootPath: join(dir, 'keys', 'root.json'), board: 'qemu-virt-arm64' });
    expect(v.payloads.map((p) => p.name)).toEqual(['app.js', LINE_TABLE_PAYLOAD]);
    expect(utf8Decode(v.payloads[1].bytes)).toBe(bundle.lineTable);
    expect(v.payloads[1].bytes.length).toBeLessThan(4096);
  });

  it('a table is runs, and a malformed one is refused (the device then reports bundle lines)', () => {
    const t = makeLineTable(['a.ts', 'b.ts'], [undefined, { source: 0, line: 5 }, { source: 0, line: 6 }, { source: 1, line: 2 }, undefined]);
    expect(t.runs).toEqual([1, -1, 0, 2, 0, 5, 4, 1, 2, 5, -1, 0]);
    const stored = encodeLineTable(t);
    expect(JSON.parse(stored).runs).toEqual([1, -1, 0, 1, 0, 5, 2, 1, -3, 1, -1, -2]);
    const back = parseLineTable(stored)!;
    expect(back.runs).toEqual(t.runs);
    expect([1, 2, 3, 4, 5].map((l) => lookupLine(back, l))).toEqual([null, 'a.ts:5', 'a.ts:6', 'b.ts:2', null]);
    for (const bad of ['', 'null', '{"v":2,"sources":[],"runs":[]}', '{"v":1,"sources":["a"],"runs":[1,1,1]}', '{"v":1,"sources":["a"],"runs":[2,0,1,0,0,1]}', '{"v":1,"sources":["a"],"runs":[1,0]}', '{"v":1,"sources":["a"],"runs":[1,0,0.5]}']) {
      expect(parseLineTable(bad)).toBeNull();
    }
  });
});
