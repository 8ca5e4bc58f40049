/**
 * The TCB report as one self-contained HTML page: a squarified treemap (absolutely positioned
 * divs, area ∝ bytes, coloured by kind, or by change when given a diff) and the table. No
 * scripts, no external assets: it can be attached to a release or opened from a CI artifact.
 */
import type { TcbDiff, TcbReport, TcbStatus } from './tcb';
import { formatBytes, statusOf } from './tcb';
import { squarify } from './treemap';
import type { ModuleKind } from './modules';

export const TREEMAP_WIDTH = 960;
export const TREEMAP_HEIGHT = 540;

const KIND_COLOURS: Record<ModuleKind, string> = { app: '#4e79a7', sdk: '#59a14f', 'third-party': '#f28e2b' };
const STATUS_COLOURS: Record<TcbStatus, string> = { added: '#2e9d4a', grew: '#d1495b', shrank: '#3d7dca', unchanged: '#9aa0a6', removed: '#ffffff' };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

function px(n: number): string {
  return (Math.round(n * 100) / 100).toString() + 'px';
}

function legend(entries: [string, string][]): string {
  return '<ul class="legend">' + entries.map(([label, colour]) => '<li><span class="swatch" style="background:' + colour + '"></span>' + esc(label) + '</li>').join('') + '</ul>';
}

function signed(n: number): string {
  return (n > 0 ? '+' : n < 0 ? '-' : '±') + formatBytes(Math.abs(n));
}

export function renderTcbHtml(report: TcbReport, diff?: TcbDiff): string {
  const rects = squarify(report.modules.map((m) => ({ value: m.bytes, data: m })), TREEMAP_WIDTH, TREEMAP_HEIGHT);
  const cells = rects.map((r) => {
    const m = r.data;
    const st = diff ? statusOf(m.name, diff) : undefined;
    const colour = st ? STATUS_COLOURS[st.status] : KIND_COLOURS[m.kind];
    const change = st ? (st.status === 'added' ? ', new' : st.status === 'unchanged' ? ', unchanged' : ', ' + signed(st.delta) + ' bytes') : '';
    const title = m.name + ' (' + m.kind + '): ' + formatBytes(m.bytes) + ' bytes, ' + m.percent.toFixed(1) + '%' + change;
    const label = r.w >= 70 && r.h >= 30 ? '<span class="label">' + esc(m.name) + '<br>' + formatBytes(m.bytes) + ' B</span>' : '';
    return '<div class="cell" style="left:' + px(r.x) + ';top:' + px(r.y) + ';width:' + px(r.w) + ';height:' + px(r.h) + ';background:' + colour + '"' +
      ' data-name="' + esc(m.name) + '" data-kind="' + m.kind + '" data-bytes="' + m.bytes + '"' + (st ? ' data-status="' + st.status + '"' : '') +
      ' title="' + esc(title) + '">' + label + '</div>';
  });

  const rows = report.modules.map((m) => {
    const st = diff ? statusOf(m.name, diff) : undefined;
    const change = st ? '<td class="num">' + (st.status === 'added' ? 'new' : st.status === 'unchanged' ? '' : signed(st.delta)) + '</td>' : '';
    return '<tr><td>' + esc(m.name) + '</td><td>' + m.kind + '</td><td class="num">' + formatBytes(m.bytes) + '</td><td class="num">' + m.percent.toFixed(1) + '%</td>' + change + '</tr>';
  });
  if (diff) {
    for (const m of diff.removed) rows.push('<tr class="removed"><td>' + esc(m.name) + '</td><td>' + m.kind + '</td><td class="num">0</td><td class="num">0.0%</td><td class="num">removed (' + signed(-m.bytes) + ')</td></tr>');
  }
  const kindRows = report.kinds.map((k) => '<tr><td>' + k.kind + '</td><td class="num">' + k.modules + '</td><td class="num">' + formatBytes(k.bytes) + '</td><td class="num">' + k.percent.toFixed(1) + '%</td></tr>');

  const summary = formatBytes(report.codeBytes) + ' bytes of code in ' + report.modules.length + ' modules' +
    (report.payloadBytes > report.codeBytes ? '; payload ' + formatBytes(report.payloadBytes) + ' bytes with assets' : '') +
    (diff ? '; change ' + signed(diff.delta) + ' bytes: ' + diff.added.length + ' added, ' + diff.removed.length + ' removed, ' + diff.grew.length + ' grew, ' + diff.shrank.length + ' shrank, ' + diff.unchanged + ' unchanged' : '');
  const legendHtml = diff
    ? legend((['added', 'grew', 'shrank', 'unchanged'] as TcbStatus[]).map((s) => [s, STATUS_COLOURS[s]]))
    : legend((Object.keys(KIND_COLOURS) as ModuleKind[]).map((k) => [k, KIND_COLOURS[k]]));

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Trusted code base: ${formatBytes(report.codeBytes)} bytes</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
.treemap { position: relative; width: ${TREEMAP_WIDTH}px; height: ${TREEMAP_HEIGHT}px; border: 1px solid #444; background: #eee; }
.cell { position: absolute; box-sizing: border-box; border: 1px solid #fff; overflow: hidden; color: #fff; }
.label { display: block; padding: 3px 5px; font-size: 12px; word-break: break-all; text-shadow: 0 0 2px #000; }
.legend { list-style: none; padding: 0; display: flex; gap: 16px; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 6px; vertical-align: -1px; }
table { border-collapse: collapse; margin-top: 16px; }
th, td { padding: 2px 10px; border-bottom: 1px solid #ddd; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.removed td { color: #888; text-decoration: line-through; }
</style>
</head>
<body>
<h1>Trusted code base</h1>
<p class="summary">${esc(summary)}</p>
${legendHtml}
<div class="treemap" data-width="${TREEMAP_WIDTH}" data-height="${TREEMAP_HEIGHT}">
${cells.join('\n')}
</div>
<table class="modules">
<thead><tr><th>module</th><th>kind</th><th class="num">bytes</th><th class="num">share</th>${diff ? '<th class="num">change</th>' : ''}</tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
<table class="kinds">
<thead><tr><th>kind</th><th class="num">modules</th><th class="num">bytes</th><th class="num">share</th></tr></thead>
<tbody>
${kindRows.join('\n')}
</tbody>
</table>
</body>
</html>
`;
}
