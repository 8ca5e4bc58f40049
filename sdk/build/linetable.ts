/**
 * The app image's line table (payload `app.lines`): which file and line of the service's own
 * source each line of the bundle came from, so the device can report `src/main.ts:42` instead
 * of `app.js:1234`. Made at build time from the bundle's source map composed with each
 * module's lowering map; read on the device by the boot stage (this file is ES5-safe: no
 * Node imports, no engine features Duktape lacks).
 *
 * Format (JSON, UTF-8): `{ "v": 1, "sources": [name...], "runs": [g, s, l, ...] }`: each
 * triple starts a run at bundle line g (1-based, increasing) whose line g + k came from line
 * l + k of sources[s]; s = -1 is a run of lines with no source line (generated code).
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

/** Parses a table; null when it is not one (the caller then reports bundle lines). */
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
  let last = 0;
  for (let i = 0; i < o.runs.length; i += 3) {
    const g = o.runs[i], s = o.runs[i + 1], l = o.runs[i + 2];
    if (typeof g !== 'number' || typeof s !== 'number' || typeof l !== 'number' || g <= last || g % 1 !== 0 || l % 1 !== 0) return null;
    if (s !== -1 && (s < 0 || s >= o.sources.length || s % 1 !== 0)) return null;
    last = g;
  }
  return o;
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
