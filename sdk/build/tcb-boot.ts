/**
 * The trusted-code-base report of a boot image, from the signed record it carries
 * (sdk/disk/boot-tcb): the kernel (version, source, config hash, options set, size), /init by
 * library, the initramfs by part; and what changed against an older boot image: kernel options
 * added, removed and changed, and the size delta of each library and part.
 */
import type { BootTcbRecord } from '../disk/boot-tcb';
import { formatBytes } from './tcb';

export interface SizeChange {
  name: string;
  before: number;
  after: number;
  delta: number;
}

export interface BootTcbDiff {
  kernel: {
    versionBefore: string;
    versionAfter: string;
    sourceBefore: string;
    sourceAfter: string;
    configSha256Before: string;
    configSha256After: string;
    optionsSetBefore: number;
    optionsSetAfter: number;
    bytes: SizeChange;
  };
  /** Options set in the newer config only / the older only / in both with another value. By name. */
  options: {
    added: { name: string; value: string }[];
    removed: { name: string; value: string }[];
    changed: { name: string; before: string; after: string }[];
  };
  /** Every library of either /init, by name; libraries absent on one side count 0 there. */
  native: SizeChange[];
  nativeBytes: SizeChange;
  initramfs: SizeChange[];
  initramfsBytes: SizeChange;
}

function change(name: string, before: number, after: number): SizeChange {
  return { name, before, after, delta: after - before };
}

function sizeChanges(before: { name: string; bytes: number }[], after: { name: string; bytes: number }[]): SizeChange[] {
  const names = [...new Set([...after.map((p) => p.name), ...before.map((p) => p.name)])];
  const of = (list: { name: string; bytes: number }[], n: string) => list.find((p) => p.name === n)?.bytes ?? 0;
  return names.map((n) => change(n, of(before, n), of(after, n)));
}

const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export function diffBootTcb(older: BootTcbRecord, newer: BootTcbRecord): BootTcbDiff {
  const o = older.kernelOptions;
  const n = newer.kernelOptions;
  const has = (m: Record<string, string>, k: string) => Object.prototype.hasOwnProperty.call(m, k);
  const options: BootTcbDiff['options'] = { added: [], removed: [], changed: [] };
  for (const k of Object.keys(n)) {
    if (!has(o, k)) options.added.push({ name: k, value: n[k]! });
    else if (o[k] !== n[k]) options.changed.push({ name: k, before: o[k]!, after: n[k]! });
  }
  for (const k of Object.keys(o)) if (!has(n, k)) options.removed.push({ name: k, value: o[k]! });
  options.added.sort(byName);
  options.removed.sort(byName);
  options.changed.sort(byName);
  const lib = (r: BootTcbRecord) => r.native.parts.map((p) => ({ name: p.library, bytes: p.bytes }));
  return {
    kernel: {
      versionBefore: older.kernel.version,
      versionAfter: newer.kernel.version,
      sourceBefore: older.kernel.source,
      sourceAfter: newer.kernel.source,
      configSha256Before: older.kernel.configSha256,
      configSha256After: newer.kernel.configSha256,
      optionsSetBefore: older.kernel.optionsSet,
      optionsSetAfter: newer.kernel.optionsSet,
      bytes: change('kernel', older.kernel.bytes, newer.kernel.bytes),
    },
    options,
    native: sizeChanges(lib(older), lib(newer)),
    nativeBytes: change('/init', older.native.loadableBytes, newer.native.loadableBytes),
    initramfs: sizeChanges(older.initramfs.parts, newer.initramfs.parts),
    initramfsBytes: change('initramfs', older.initramfs.bytes, newer.initramfs.bytes),
  };
}

function signed(n: number): string {
  return (n > 0 ? '+' : n < 0 ? '-' : '±') + formatBytes(Math.abs(n));
}

function pct(part: number, whole: number): string {
  return (whole === 0 ? 0 : (part * 100) / whole).toFixed(1) + '%';
}

function table(rows: string[][], right: boolean[]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (right[c] ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd());
}

function changeCell(c: SizeChange | undefined): string {
  if (!c) return '';
  if (c.before === 0 && c.after > 0) return 'new';
  if (c.after === 0 && c.before > 0) return 'removed (' + signed(c.delta) + ')';
  return c.delta === 0 ? '' : signed(c.delta);
}

/** The report as plain text for a terminal; with a diff, change columns and the kernel option changes. */
export function formatBootTcbText(r: BootTcbRecord, diff?: BootTcbDiff): string {
  const k = r.kernel;
  const out: string[] = [];
  out.push(`Boot image TCB: ${r.board} (${r.arch})`);
  out.push('');
  out.push(`kernel     Linux ${k.version}, ${k.source} (${k.package})`);
  out.push(`           config sha256 ${k.configSha256}, ${k.optionsSet} options set`);
  out.push(`           ${formatBytes(k.bytes)} bytes` + (k.compression === 'none' ? '' : `, stored ${k.compression} ${formatBytes(k.fitBytes)}`) +
    (diff ? ` (${signed(diff.kernel.bytes.delta)})` : ''));
  out.push('');
  out.push(`native     /init (signet-host): ${formatBytes(r.native.loadableBytes)} loadable bytes, file ${formatBytes(r.native.fileBytes)}` +
    (diff ? ` (${signed(diff.nativeBytes.delta)})` : ''));
  const nativeRows: string[][] = [['library', 'bytes', 'share', ...(diff ? ['change'] : []), 'made of']];
  for (const p of r.native.parts) {
    const members = Object.keys(p.members).length > 1 ? Object.entries(p.members).sort((a, b) => b[1] - a[1]).map(([m, b]) => `${m} ${formatBytes(b)}`).join(', ') : '';
    nativeRows.push([p.library, formatBytes(p.bytes), pct(p.bytes, r.native.loadableBytes), ...(diff ? [changeCell(diff.native.find((c) => c.name === p.library))] : []), members]);
  }
  if (diff) for (const c of diff.native) if (c.after === 0) nativeRows.push([c.name, '0', pct(0, 1), changeCell(c), '']);
  out.push(...table(nativeRows, [false, true, true, ...(diff ? [true] : []), false]).map((l) => '  ' + l));
  out.push('');
  out.push(`initramfs  ${formatBytes(r.initramfs.bytes)} bytes` + (r.initramfs.fitBytes !== r.initramfs.bytes ? `, stored ${formatBytes(r.initramfs.fitBytes)}` : '') +
    (diff ? ` (${signed(diff.initramfsBytes.delta)})` : ''));
  const partRows: string[][] = [['part', 'bytes', 'share', ...(diff ? ['change'] : [])]];
  for (const p of r.initramfs.parts) {
    partRows.push([p.name, formatBytes(p.bytes), pct(p.bytes, r.initramfs.bytes), ...(diff ? [changeCell(diff.initramfs.find((c) => c.name === p.name))] : [])]);
  }
  if (diff) for (const c of diff.initramfs) if (c.after === 0) partRows.push([c.name, '0', pct(0, 1), changeCell(c)]);
  out.push(...table(partRows, [false, true, true, true]).map((l) => '  ' + l));
  out.push(`dtb        ${formatBytes(r.dtbBytes)} bytes`);
  if (diff) {
    const d = diff.kernel;
    const o = diff.options;
    out.push('');
    out.push(`vs older: kernel ${d.versionBefore === d.versionAfter ? d.versionAfter : d.versionBefore + ' → ' + d.versionAfter}` +
      (d.sourceBefore === d.sourceAfter ? '' : `, source ${d.sourceBefore} → ${d.sourceAfter}`) +
      (d.configSha256Before === d.configSha256After ? ', same config' : `, config ${d.configSha256Before.slice(0, 12)} → ${d.configSha256After.slice(0, 12)}`) +
      `, options set ${d.optionsSetBefore} → ${d.optionsSetAfter}: ${o.added.length} added, ${o.removed.length} removed, ${o.changed.length} changed`);
    for (const a of o.added) out.push(`  + CONFIG_${a.name}=${a.value}`);
    for (const a of o.removed) out.push(`  - CONFIG_${a.name}=${a.value}`);
    for (const c of o.changed) out.push(`  ~ CONFIG_${c.name}: ${c.before} → ${c.after}`);
  }
  return out.join('\n') + '\n';
}
