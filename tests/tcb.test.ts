// sdk/build/tcb: report, diff, text and HTML. The HTML is checked by its structure (one cell per
// module, areas proportional to bytes, cells inside the canvas and not overlapping), not pixels.
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bundleService, type BundleModule } from '../sdk/build/bundle';
import { BuildError } from '../sdk/build/errors';
import { buildTcbReport, diffTcb, formatTcbText, renderTcbHtml } from '../sdk/build/tcb';
import { TREEMAP_HEIGHT, TREEMAP_WIDTH } from '../sdk/build/tcb-html';
import { squarify } from '../sdk/build/treemap';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

const v1: BundleModule[] = [
  { name: 'src/main.ts', kind: 'app', bytes: 1200 },
  { name: 'src/http.ts', kind: 'app', bytes: 800 },
  { name: 'signet/runtime/index.ts', kind: 'sdk', bytes: 500 },
  { name: 'signet/ota/index.ts', kind: 'sdk', bytes: 4000 },
  { name: 'tweetnacl/nacl-fast.js', kind: 'third-party', bytes: 30000 },
  { name: 'old-lib/index.js', kind: 'third-party', bytes: 700 },
];
const v2: BundleModule[] = [
  { name: 'src/main.ts', kind: 'app', bytes: 1500 }, // grew by 300
  { name: 'src/http.ts', kind: 'app', bytes: 800 }, // unchanged
  { name: 'signet/runtime/index.ts', kind: 'sdk', bytes: 450 }, // shrank by 50
  { name: 'signet/ota/index.ts', kind: 'sdk', bytes: 4000 }, // unchanged
  { name: 'tweetnacl/nacl-fast.js', kind: 'third-party', bytes: 30000 }, // unchanged
  { name: 'src/metrics.ts', kind: 'app', bytes: 640 }, // added
];

interface Cell {
  name: string;
  kind: string;
  bytes: number;
  status?: string;
  x: number;
  y: number;
  w: number;
  h: number;
  title: string;
}

function unescape(s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
}

function cells(html: string): Cell[] {
  const out: Cell[] = [];
  const re = /<div class="cell" style="left:([\d.]+)px;top:([\d.]+)px;width:([\d.]+)px;height:([\d.]+)px;[^"]*" data-name="([^"]*)" data-kind="([^"]*)" data-bytes="(\d+)"(?: data-status="([^"]*)")? title="([^"]*)">/g;
  for (let m = re.exec(html); m; m = re.exec(html)) {
    out.push({ x: +m[1], y: +m[2], w: +m[3], h: +m[4], name: unescape(m[5]), kind: m[6], bytes: +m[7], status: m[8], title: unescape(m[9]) });
  }
  return out;
}

function overlap(a: { x: number; y: number; w: number; h: number }, b: { x: number; y: number; w: number; h: number }): number {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? w * h : 0;
}

/** Geometry every treemap must have; `eps` absorbs the 0.01 px rounding of the HTML. */
function expectTreemap(rects: { x: number; y: number; w: number; h: number; bytes: number }[], width: number, height: number, eps: number): void {
  const total = rects.reduce((s, r) => s + r.bytes, 0);
  let area = 0;
  for (const r of rects) {
    expect(r.x).toBeGreaterThanOrEqual(-eps);
    expect(r.y).toBeGreaterThanOrEqual(-eps);
    expect(r.x + r.w).toBeLessThanOrEqual(width + eps);
    expect(r.y + r.h).toBeLessThanOrEqual(height + eps);
    const want = (r.bytes / total) * width * height;
    expect(Math.abs(r.w * r.h - want)).toBeLessThanOrEqual(Math.max(want * 1e-6, eps * (r.w + r.h) + eps * eps));
    area += r.w * r.h;
  }
  expect(Math.abs(area - width * height)).toBeLessThanOrEqual(eps * (width + height) * rects.length);
  for (let i = 0; i < rects.length; i++) {
    for (let j = i + 1; j < rects.length; j++) expect(overlap(rects[i], rects[j])).toBeLessThanOrEqual(eps * (width + height));
  }
}

describe('buildTcbReport', () => {
  it('totals per kind and overall, with percentages that add up', () => {
    const r = buildTcbReport(v1, { payloadBytes: 40000 });
    expect(r.codeBytes).toBe(37200);
    expect(r.payloadBytes).toBe(40000);
    expect(r.kinds).toEqual([
      { kind: 'app', modules: 2, bytes: 2000, percent: (2000 * 100) / 37200 },
      { kind: 'sdk', modules: 2, bytes: 4500, percent: (4500 * 100) / 37200 },
      { kind: 'third-party', modules: 2, bytes: 30700, percent: (30700 * 100) / 37200 },
    ]);
    expect(r.modules.map((m) => m.name)).toEqual([
      'tweetnacl/nacl-fast.js', 'signet/ota/index.ts', 'src/main.ts', 'src/http.ts', 'old-lib/index.js', 'signet/runtime/index.ts',
    ]);
    expect(r.modules.reduce((s, m) => s + m.percent, 0)).toBeCloseTo(100, 9);
  });

  it('adds up to the size of a real bundle', async () => {
    const b = await bundleService({ projectDir: join(repoRoot, 'examples/hello'), entry: 'src/main.ts', engine: 'duktape-es5', typecheck: false });
    const r = buildTcbReport(b.modules);
    expect(r.codeBytes).toBe(Buffer.byteLength(b.code));
    expect(r.kinds.reduce((s, k) => s + k.bytes, 0)).toBe(r.codeBytes);
    expect(r.kinds.find((k) => k.kind === 'app')!.modules).toBe(1);
  });

  it('refuses inputs that cannot be a TCB (E_TCB_INPUT)', () => {
    const bad: BundleModule[][] = [
      [{ name: 'a', kind: 'app', bytes: 1 }, { name: 'a', kind: 'sdk', bytes: 2 }],
      [{ name: 'a', kind: 'app', bytes: -1 }],
      [{ name: 'a', kind: 'app', bytes: 1.5 }],
      [{ name: 'a', kind: 'vendor' as 'app', bytes: 1 }],
      [{ name: '', kind: 'app', bytes: 1 }],
    ];
    for (const deps of bad) {
      expect(() => buildTcbReport(deps)).toThrow(BuildError);
      try {
        buildTcbReport(deps);
      } catch (e) {
        expect((e as BuildError).code).toBe('E_TCB_INPUT');
      }
    }
    expect(() => buildTcbReport(v1, { payloadBytes: 10 })).toThrow(/less than/);
  });
});

describe('diffTcb', () => {
  it('sorts every module into added, removed, grew, shrank or unchanged, with byte deltas', () => {
    const d = diffTcb(v1, v2);
    expect(d.added).toEqual([{ name: 'src/metrics.ts', kind: 'app', bytes: 640 }]);
    expect(d.removed).toEqual([{ name: 'old-lib/index.js', kind: 'third-party', bytes: 700 }]);
    expect(d.grew).toEqual([{ name: 'src/main.ts', kind: 'app', before: 1200, after: 1500, delta: 300 }]);
    expect(d.shrank).toEqual([{ name: 'signet/runtime/index.ts', kind: 'sdk', before: 500, after: 450, delta: -50 }]);
    expect(d.unchanged).toBe(3);
    expect(d.delta).toBe(640 - 700 + 300 - 50);
    expect(d.codeBytesAfter - d.codeBytesBefore).toBe(d.delta);
    // Reports are accepted as well as module lists.
    expect(diffTcb(buildTcbReport(v1), buildTcbReport(v2))).toEqual(d);
  });

  it('accounts for every module and every byte (property)', () => {
    const mods = fc.uniqueArray(
      fc.record({ name: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'), kind: fc.constantFrom('app' as const, 'sdk' as const, 'third-party' as const), bytes: fc.nat(5000) }),
      { selector: (m) => m.name },
    );
    fc.assert(fc.property(mods, mods, (older, newer) => {
      const d = diffTcb(older, newer);
      expect(d.added.length + d.grew.length + d.shrank.length + d.unchanged).toBe(newer.length);
      expect(d.removed.length + d.grew.length + d.shrank.length + d.unchanged).toBe(older.length);
      const sum = (xs: { bytes: number }[]) => xs.reduce((s, m) => s + m.bytes, 0);
      const deltas = [...d.grew, ...d.shrank].reduce((s, c) => s + c.delta, 0);
      expect(sum(d.added) - sum(d.removed) + deltas).toBe(d.delta);
      for (const g of d.grew) expect(g.delta).toBeGreaterThan(0);
      for (const s of d.shrank) expect(s.delta).toBeLessThan(0);
    }));
  });
});

describe('formatTcbText', () => {
  it('is an aligned table with every module, totals per kind, and the payload', () => {
    const text = formatTcbText(buildTcbReport(v1, { payloadBytes: 40000 }));
    const lines = text.split('\n');
    for (const m of v1) expect(text).toContain(m.name);
    expect(text).toContain('37 200');
    expect(text).toMatch(/payload 40 000 bytes: code 37 200 \+ assets 2 800/);
    // The bytes column is right-aligned: every module row ends its bytes at the same column.
    const rows = lines.filter((l) => v1.some((m) => l.startsWith(m.name + ' ')));
    expect(rows).toHaveLength(v1.length);
    const ends = rows.map((l) => l.search(/\d\s+\d+\.\d%$/));
    expect(new Set(ends).size).toBe(1);
  });

  it('shows the change of each module in diff mode, removed ones included', () => {
    const d = diffTcb(v1, v2);
    const text = formatTcbText(buildTcbReport(v2), d);
    expect(text).toMatch(/src\/metrics\.ts\s+app\s+640\s+[\d.]+%\s+new/);
    expect(text).toMatch(/src\/main\.ts\s+app\s+1 500\s+[\d.]+%\s+\+300/);
    expect(text).toMatch(/signet\/runtime\/index\.ts\s+sdk\s+450\s+[\d.]+%\s+-50/);
    expect(text).toMatch(/old-lib\/index\.js\s+third-party\s+0\s+0\.0%\s+removed \(-700\)/);
    expect(text).toContain('1 added, 1 removed, 1 grew, 1 shrank, 3 unchanged');
  });
});

describe('renderTcbHtml', () => {
  it('is one self-contained page: no scripts, no external assets', () => {
    const html = renderTcbHtml(buildTcbReport(v1));
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/<script|<link|<img|src=|href=|url\(|@import/i);
  });

  it('draws one cell per module, area proportional to bytes, inside the canvas, not overlapping', () => {
    const report = buildTcbReport(v1);
    const cs = cells(renderTcbHtml(report));
    expect(cs.map((c) => c.name).sort()).toEqual(v1.map((m) => m.name).sort());
    for (const c of cs) {
      const m = v1.find((x) => x.name === c.name)!;
      expect(c.kind).toBe(m.kind);
      expect(c.bytes).toBe(m.bytes);
      expect(c.title).toContain(m.name);
      expect(c.status).toBeUndefined();
    }
    expectTreemap(cs, TREEMAP_WIDTH, TREEMAP_HEIGHT, 0.02);
  });

  it('colours by kind, or by change in diff mode, and lists removed modules in the table only', () => {
    const byKind = cells(renderTcbHtml(buildTcbReport(v2)));
    const colourOf = (html: string, name: string) => new RegExp('background:(#[0-9a-f]{6})" data-name="' + name.replace(/[./]/g, '\\$&') + '"').exec(html)![1];
    const plain = renderTcbHtml(buildTcbReport(v2));
    expect(colourOf(plain, 'src/main.ts')).toBe(colourOf(plain, 'src/http.ts')); // both app
    expect(colourOf(plain, 'src/main.ts')).not.toBe(colourOf(plain, 'signet/ota/index.ts'));
    expect(byKind).toHaveLength(v2.length);

    const d = diffTcb(v1, v2);
    const html = renderTcbHtml(buildTcbReport(v2), d);
    const status = Object.fromEntries(cells(html).map((c) => [c.name, c.status]));
    expect(status).toEqual({
      'src/main.ts': 'grew', 'src/http.ts': 'unchanged', 'signet/runtime/index.ts': 'shrank',
      'signet/ota/index.ts': 'unchanged', 'tweetnacl/nacl-fast.js': 'unchanged', 'src/metrics.ts': 'added',
    });
    expect(colourOf(html, 'src/http.ts')).toBe(colourOf(html, 'signet/ota/index.ts')); // both unchanged
    expect(colourOf(html, 'src/main.ts')).not.toBe(colourOf(html, 'src/metrics.ts'));
    expect(html).not.toContain('data-name="old-lib/index.js"');
    expect(html).toMatch(/<tr class="removed"><td>old-lib\/index\.js<\/td>/);
  });

  it('escapes module names', () => {
    const html = renderTcbHtml(buildTcbReport([{ name: '<img src=x onerror=alert(1)>.js', kind: 'third-party', bytes: 10 }]));
    expect(html).not.toContain('<img');
    expect(cells(html)[0].name).toBe('<img src=x onerror=alert(1)>.js');
  });

  it('leaves out zero-byte modules from the treemap but keeps them in the table', () => {
    const html = renderTcbHtml(buildTcbReport([{ name: 'a.ts', kind: 'app', bytes: 10 }, { name: 'empty.ts', kind: 'app', bytes: 0 }]));
    expect(cells(html).map((c) => c.name)).toEqual(['a.ts']);
    expect(html).toContain('<td>empty.ts</td>');
  });
});

describe('squarify', () => {
  it('tiles the canvas exactly for any sizes (property)', () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 1, max: 1_000_000 }), { minLength: 1, maxLength: 60 }),
      fc.integer({ min: 50, max: 2000 }), fc.integer({ min: 50, max: 2000 }),
      (sizes, w, h) => {
        const rects = squarify(sizes.map((s, i) => ({ value: s, data: i })), w, h);
        expect(rects).toHaveLength(sizes.length);
        expectTreemap(rects.map((r) => ({ ...r, bytes: sizes[r.data] })), w, h, 1e-6 * (w + h));
      },
    ), { numRuns: 200 });
  });

  it('keeps cells near square for equal sizes', () => {
    const rects = squarify(Array.from({ length: 16 }, (_, i) => ({ value: 1, data: i })), 400, 400);
    for (const r of rects) expect(Math.max(r.w / r.h, r.h / r.w)).toBeLessThan(2);
  });
});
