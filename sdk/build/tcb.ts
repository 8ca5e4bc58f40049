/**
 * The trusted code base of an image: every module in the app bundle with the bytes it adds.
 * Built from the `dependencies` list a build puts in the image manifest, so the same report can
 * be made for any signed image, and two releases can be compared module by module.
 */
import type { BundleModule } from './bundle';
import { BuildError } from './errors';
import type { ModuleKind } from './modules';

export { renderTcbHtml } from './tcb-html';

export const MODULE_KINDS: readonly ModuleKind[] = ['app', 'sdk', 'third-party'];

export interface TcbModule extends BundleModule {
  /** Share of the code bytes, 0-100. */
  percent: number;
}

export interface TcbKindTotal {
  kind: ModuleKind;
  modules: number;
  bytes: number;
  percent: number;
}

export interface TcbReport {
  /** Largest first; ties by name. */
  modules: TcbModule[];
  /** One entry per kind, in MODULE_KINDS order (zeros included). */
  kinds: TcbKindTotal[];
  /** Sum of module bytes: the app bundle. */
  codeBytes: number;
  /** All payload bytes of the image (bundle + assets); codeBytes when not given. */
  payloadBytes: number;
}

export interface TcbChange {
  name: string;
  kind: ModuleKind;
  before: number;
  after: number;
  delta: number;
}

export interface TcbDiff {
  added: BundleModule[];
  removed: BundleModule[];
  grew: TcbChange[];
  shrank: TcbChange[];
  unchanged: number;
  codeBytesBefore: number;
  codeBytesAfter: number;
  delta: number;
}

export type TcbInput = readonly BundleModule[] | TcbReport;

function percent(part: number, whole: number): number {
  return whole === 0 ? 0 : (part * 100) / whole;
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function checkModules(deps: readonly BundleModule[]): void {
  const seen = new Set<string>();
  for (const d of deps) {
    if (typeof d.name !== 'string' || d.name.length === 0) throw new BuildError('E_TCB_INPUT', 'a dependency has no name');
    if (seen.has(d.name)) throw new BuildError('E_TCB_INPUT', 'dependency "' + d.name + '" is listed twice');
    seen.add(d.name);
    if (MODULE_KINDS.indexOf(d.kind) < 0) throw new BuildError('E_TCB_INPUT', 'dependency "' + d.name + '" has unknown kind "' + String(d.kind) + '"');
    if (!Number.isSafeInteger(d.bytes) || d.bytes < 0) throw new BuildError('E_TCB_INPUT', 'dependency "' + d.name + '" has invalid size ' + String(d.bytes));
  }
}

export function buildTcbReport(deps: readonly BundleModule[], opts: { payloadBytes?: number } = {}): TcbReport {
  checkModules(deps);
  const codeBytes = deps.reduce((s, d) => s + d.bytes, 0);
  const payloadBytes = opts.payloadBytes ?? codeBytes;
  if (!Number.isSafeInteger(payloadBytes) || payloadBytes < codeBytes) {
    throw new BuildError('E_TCB_INPUT', 'payload size ' + String(payloadBytes) + ' is less than the ' + codeBytes + ' bytes of code it holds');
  }
  const modules = deps
    .map((d) => ({ name: d.name, kind: d.kind, bytes: d.bytes, percent: percent(d.bytes, codeBytes) }))
    .sort((a, b) => b.bytes - a.bytes || byName(a, b));
  const kinds = MODULE_KINDS.map((kind) => {
    const of = deps.filter((d) => d.kind === kind);
    const bytes = of.reduce((s, d) => s + d.bytes, 0);
    return { kind, modules: of.length, bytes, percent: percent(bytes, codeBytes) };
  });
  return { modules, kinds, codeBytes, payloadBytes };
}

function modulesOf(x: TcbInput): readonly BundleModule[] {
  return Array.isArray(x) ? (x as readonly BundleModule[]) : (x as TcbReport).modules;
}

export function diffTcb(older: TcbInput, newer: TcbInput): TcbDiff {
  const before = modulesOf(older);
  const after = modulesOf(newer);
  checkModules(before);
  checkModules(after);
  const old = new Map(before.map((m) => [m.name, m]));
  const now = new Map(after.map((m) => [m.name, m]));
  const diff: TcbDiff = { added: [], removed: [], grew: [], shrank: [], unchanged: 0, codeBytesBefore: 0, codeBytesAfter: 0, delta: 0 };
  for (const m of after) {
    const o = old.get(m.name);
    if (!o) diff.added.push({ name: m.name, kind: m.kind, bytes: m.bytes });
    else if (m.bytes > o.bytes) diff.grew.push({ name: m.name, kind: m.kind, before: o.bytes, after: m.bytes, delta: m.bytes - o.bytes });
    else if (m.bytes < o.bytes) diff.shrank.push({ name: m.name, kind: m.kind, before: o.bytes, after: m.bytes, delta: m.bytes - o.bytes });
    else diff.unchanged++;
  }
  for (const m of before) if (!now.has(m.name)) diff.removed.push({ name: m.name, kind: m.kind, bytes: m.bytes });
  diff.added.sort((a, b) => b.bytes - a.bytes || byName(a, b));
  diff.removed.sort((a, b) => b.bytes - a.bytes || byName(a, b));
  diff.grew.sort((a, b) => b.delta - a.delta || byName(a, b));
  diff.shrank.sort((a, b) => a.delta - b.delta || byName(a, b));
  diff.codeBytesBefore = before.reduce((s, m) => s + m.bytes, 0);
  diff.codeBytesAfter = after.reduce((s, m) => s + m.bytes, 0);
  diff.delta = diff.codeBytesAfter - diff.codeBytesBefore;
  return diff;
}

export type TcbStatus = 'added' | 'grew' | 'shrank' | 'unchanged' | 'removed';

/** What happened to one module of the newer report, per the diff. */
export function statusOf(name: string, diff: TcbDiff): { status: TcbStatus; delta: number } {
  if (diff.added.some((m) => m.name === name)) return { status: 'added', delta: 0 };
  const g = diff.grew.find((c) => c.name === name);
  if (g) return { status: 'grew', delta: g.delta };
  const s = diff.shrank.find((c) => c.name === name);
  if (s) return { status: 'shrank', delta: s.delta };
  return { status: 'unchanged', delta: 0 };
}

/** 12345 → "12 345": thin grouping that reads the same in any locale. */
export function formatBytes(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
}

function signed(n: number): string {
  return (n > 0 ? '+' : n < 0 ? '-' : '±') + formatBytes(Math.abs(n));
}

function pct(p: number): string {
  return p.toFixed(1) + '%';
}

function table(rows: string[][], rightAligned: boolean[]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (rightAligned[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd());
}

/** The report as an aligned plain-text table for a terminal; with a diff, a change column. */
export function formatTcbText(report: TcbReport, diff?: TcbDiff): string {
  const header = ['module', 'kind', 'bytes', 'share'];
  if (diff) header.push('change');
  const rows: string[][] = [header];
  for (const m of report.modules) {
    const row = [m.name, m.kind, formatBytes(m.bytes), pct(m.percent)];
    if (diff) {
      const st = statusOf(m.name, diff);
      row.push(st.status === 'added' ? 'new' : st.status === 'unchanged' ? '' : signed(st.delta));
    }
    rows.push(row);
  }
  if (diff) for (const m of diff.removed) rows.push([m.name, m.kind, '0', pct(0), 'removed (' + signed(-m.bytes) + ')']);
  const lines = table(rows, header.map((h) => h === 'bytes' || h === 'share' || h === 'change'));
  lines.splice(1, 0, '-'.repeat(Math.max(...lines.map((l) => l.length))));

  const kindRows = report.kinds.map((k) => [k.kind, k.modules + (k.modules === 1 ? ' module' : ' modules'), formatBytes(k.bytes), pct(k.percent)]);
  kindRows.push(['total', report.modules.length + (report.modules.length === 1 ? ' module' : ' modules'), formatBytes(report.codeBytes), pct(report.codeBytes === 0 ? 0 : 100)]);
  const out = ['Trusted code base: ' + formatBytes(report.codeBytes) + ' bytes of code in ' + report.modules.length + ' modules', '', ...lines, '', ...table(kindRows, [false, true, true, true])];
  if (report.payloadBytes > report.codeBytes) {
    out.push('payload ' + formatBytes(report.payloadBytes) + ' bytes: code ' + formatBytes(report.codeBytes) + ' + assets ' + formatBytes(report.payloadBytes - report.codeBytes));
  }
  if (diff) {
    out.push('');
    out.push('change: ' + signed(diff.delta) + ' bytes (' + formatBytes(diff.codeBytesBefore) + ' → ' + formatBytes(diff.codeBytesAfter) + '); ' +
      diff.added.length + ' added, ' + diff.removed.length + ' removed, ' + diff.grew.length + ' grew, ' + diff.shrank.length + ' shrank, ' + diff.unchanged + ' unchanged');
  }
  return out.join('\n') + '\n';
}
