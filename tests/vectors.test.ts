/**
 * Golden vectors: docs/image-format.md's decision table, shipped as files in tests/vectors/
 * with expected.json giving each case's verdict.
 *
 * - the committed files must be exactly what the generator makes today (so the format cannot
 *   drift silently); regenerate after an intended change with `node tests/vectors/generate.mjs`;
 * - every case must get its recorded verdict from every verifier Signet has: the library with
 *   Node's crypto and with the pure-JS crypto, `signet verify` (the CLI), and the boot stage's
 *   verifier bundled to ES5 and run on Duktape in the real C host (libsodium, and pure JS);
 * - the verdicts are the doc's closed set, and every code in it is reached by some vector.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNativeHost } from '../bootloader/native/build';
import { bundleService } from '../sdk/build/bundle';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { pureJsCrypto } from '../sdk/image/crypto-purejs';
import { ImageError, IMAGE_ERROR_CODES } from '../sdk/image/errors';
import { boardSlotBytes } from '../sdk/image/file';
import { verifyImage } from '../sdk/image/verify';
import { verifyTrustedRoot } from '../sdk/ota/metadata';
import { sdkRoot } from '../sdk/util/paths';
import { signet } from './helpers/cli';
import { expectedJson, generateVectors, type VectorCase } from './vectors/vectors';

const DIR = join(__dirname, 'vectors');
const committed: VectorCase[] = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8'));

function libraryVerdict(c: VectorCase, crypto: typeof nodeCrypto): string {
  const rootBytes = readFileSync(join(DIR, c.root));
  try {
    verifyImage(readFileSync(join(DIR, c.file)), {
      root: () => verifyTrustedRoot(rootBytes, crypto, c.now),
      board: c.board,
      minSecurityCounter: c.minSecurityCounter,
      now: c.now,
      crypto,
      slotBytes: c.slotBytes,
    });
    return 'OK';
  } catch (e) {
    if (!(e instanceof ImageError)) throw e;
    return e.code;
  }
}

describe('golden vectors', () => {
  it('committed vectors are byte-identical to what the generator makes', async () => {
    const { files, cases } = await generateVectors();
    for (const [name, bytes] of files) {
      expect(existsSync(join(DIR, name)), name).toBe(true);
      expect(Buffer.compare(readFileSync(join(DIR, name)), Buffer.from(bytes)), name).toBe(0);
    }
    expect(readFileSync(join(DIR, 'expected.json'), 'utf8')).toBe(expectedJson(cases));
  });

  it('the table uses the closed set of verdicts, reaches every one of them, and the boards\' real slot sizes', () => {
    const codes = new Set(committed.map((c) => c.expect));
    for (const code of codes) expect(['OK', ...IMAGE_ERROR_CODES], code).toContain(code);
    for (const code of IMAGE_ERROR_CODES) expect(codes, code).toContain(code);
    for (const c of committed) expect(c.slotBytes, `${c.file} on ${c.board}`).toBe(boardSlotBytes(c.board));
  });

  for (const c of committed) {
    it(`${c.file} with ${c.root} → ${c.expect} (${c.note})`, () => {
      expect(libraryVerdict(c, nodeCrypto), 'node').toBe(c.expect);
      expect(libraryVerdict(c, pureJsCrypto), 'purejs').toBe(c.expect);
    });
  }
});

describe('golden vectors through `signet verify`', () => {
  it('every case gets its verdict from the CLI (one error line, or exit 0)', () => {
    const wrong: string[] = [];
    for (const c of committed) {
      const r = signet(['verify', join(DIR, c.file), '--root', join(DIR, c.root), '--board', c.board,
        '--floor', String(c.minSecurityCounter), '--now', c.now === null ? 'none' : String(c.now)]);
      const lines = r.stderr.trim().split('\n');
      const m = /^error\[([A-Z0-9_]+)\]: .+ — .+/.exec(lines[0]);
      const got = r.code === 0 ? 'OK' : lines.length === 1 && m ? m[1] : `bad output: ${r.stderr}`;
      if (got !== c.expect) wrong.push(`${c.file} with ${c.root} (${c.note}): got ${got}, expected ${c.expect}`);
    }
    expect(wrong).toEqual([]);
  }, 300_000);
});

describe('golden vectors through the boot stage\'s verifier on Duktape', () => {
  let work: string;
  let host: string;
  let script: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'signet-vectors-duk-'));
    host = await buildNativeHost('host');
    const bundle = await bundleService({ projectDir: join(sdkRoot(), 'tests', 'helpers'), entry: 'vectors-duk-main.ts', engine: 'duktape-es5', typecheck: false });
    script = join(work, 'vectors.js');
    writeFileSync(script, bundle.code);
  }, 600_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  for (const mode of ['native crypto', 'pure-JS crypto']) {
    it(`every case gets its verdict (${mode})`, () => {
      const r = spawnSync(host, [script, DIR, join(DIR, 'expected.json'), ...(mode === 'pure-JS crypto' ? ['--purejs-crypto'] : [])], { encoding: 'utf8', timeout: 300_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const got = r.stdout.trim().split('\n');
      expect(got).toHaveLength(committed.length);
      const wrong = committed.flatMap((c, i) => got[i] === `${i} ${c.expect}` ? [] : [`${c.file} with ${c.root} (${c.note}): got ${got[i]}, expected ${c.expect}`]);
      expect(wrong).toEqual([]);
    }, 300_000);
  }
});
