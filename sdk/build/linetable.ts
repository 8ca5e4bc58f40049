/**
 * The app image's line table (payload `app.lines`): which file and line of the service's own
 * source each line of the bundle came from, so the device can report `src/main.ts:42` instead
 * of `app.js:1234`. Made at build time from the bundle's source map composed with each
 * module's lowering map; read on the device by the boot stage (this file is ES5-safe: no
 * Node imports, no engine features Duktape lacks).
 *
 * Format (JSON, UTF-8): `{ "v": 1, "sources": [name...], "runs": [dg, s, dl, ...] }`: each
 * triple starts a run at bundle line g (1-based, increasing) whose line g + k came from line
 * l + k of sources[s]; s = -1 is a run of lines with no source line (generated code). g and l
 * are stored as differences from the previous triple's (from 0 for the first), which keeps
 * the numbers short: about a tenth of the bundle's size for a service with the runtime.
 */

export const LINE_TABLE_PAYLOAD = 'app.lines';
/** The boot stage ignores a table larger than this (a bundle line is at most one run). */
export const LINE_TABLE_MAX_BYTES = 4 * 1024 * 1024;

export interface LineTable {
  v: 1;
  sources: string[];
  runs: number[];
}

/** Builds the table from one (source index, line) per bundle line (undefined: no source line). */
export function makeLineTable(sources: string[], perLine: ({ source: number; line: number } | undefined)[]): LineTable {
  const runs: number[] = [];
  let prev: { s: number; l: number } | null = null;
  for (let i = 0; i < perLine.length; i++) {
    const p = perLine[i];
    const s = p ? p.source : -1;
    const l = p ? p.line : 0;
    // Continues the current run when it is the next line of the same source (or still unmapped).
    if (prev && prev.s === s && (s === -1 || l === prev.l + 1)) {
      prev.l = l;
      continue;
    }
    runs.push(i + 1, s, l);
    prev = { s, l };
  }
  return { v: 1, sources, runs };
}

/** The table as stored in the image (deltas, see the format above). */
export function encodeLineTable(t: LineTable): string {
  const out: number[] = [];
  let g = 0;
  let l = 0;
  for (let i = 0; i < t.runs.length; i += 3) {
    out.push(t.runs[i] - g, t.runs[i + 1], t.runs[i + 2] - l);
    g = t.runs[i];
    l = t.runs[i + 2];
  }
  return JSON.stringify({ v: 1, sources: t.sources, runs: out });
}

/** Parses a stored table (encodeLineTable); null when it is not one (the caller then reports bundle lines). */
export function parseLineTable(text: string): LineTable | null {
  if (text.length > LINE_TABLE_MAX_BYTES) return null;
  let t: unknown;
  try {
    t = JSON.parse(text);
  } catch (e) {
    return null;
  }
  const o = t as LineTable;
  if (!o || o.v !== 1 || !(o.sources instanceof Array) || !(o.runs instanceof Array) || o.runs.length % 3 !== 0) return null;
  for (let i = 0; i < o.sources.length; i++) if (typeof o.sources[i] !== 'string') return null;
  const runs: number[] = [];
  let g = 0;
  let l = 0;
  for (let i = 0; i < o.runs.length; i += 3) {
    const dg = o.runs[i], s = o.runs[i + 1], dl = o.runs[i + 2];
    if (typeof dg !== 'number' || typeof s !== 'number' || typeof dl !== 'number' || !(dg >= 1) || dg % 1 !== 0 || dl % 1 !== 0) return null;
    if (s !== -1 && (s < 0 || s >= o.sources.length || s % 1 !== 0)) return null;
    g += dg;
    l += dl;
    runs.push(g, s, l);
  }
  return { v: 1, sources: o.sources, runs };
}

/** `file:line` for bundle line `line`, or null when the line has no source line. */
export function lookupLine(t: LineTable, line: number): string | null {
  const runs = t.runs;
  let lo = 0;
  let hi = runs.length / 3 - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (runs[mid * 3] <= line) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (found < 0) return null;
  const s = runs[found * 3 + 1];
  if (s === -1) return null;
  return t.sources[s] + ':' + (runs[found * 3 + 2] + line - runs[found * 3]);
}
