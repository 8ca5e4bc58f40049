/**
 * The dashboard: one server-rendered HTML page, no script (the page's CSP forbids it), every
 * value escaped. Fleet by board and version, rollouts with progress and failure rate, devices
 * with their last check-in and last error.
 */
import type { RolloutStatus } from './types';
import type { AuditRecord, DeviceRecord, FleetRow, RevocationRecord } from './storage';

export interface DashboardData {
  now: number;
  fleet: FleetRow[];
  rollouts: RolloutStatus[];
  devices: DeviceRecord[];
  revocations: RevocationRecord[];
  /** The most recent admin actions, oldest first. */
  audit: AuditRecord[];
  repository: { root: number; targets: number; snapshot: number; timestamp: number; targetCount: number };
}

export const DASHBOARD_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

function h(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function ago(now: number, t: number): string {
  const s = Math.max(0, now - t);
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ago';
  return Math.floor(s / 86400) + ' d ago';
}

function iso(t: number): string {
  return new Date(t * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function bar(parts: { n: number; cls: string; title: string }[], total: number): string {
  if (total <= 0) return '<div class="bar empty"></div>';
  return '<div class="bar">' + parts.filter((p) => p.n > 0).map((p) =>
    `<span class="${p.cls}" style="width:${Math.min(100, (p.n / total) * 100).toFixed(1)}%" title="${h(p.title)}: ${p.n}"></span>`).join('') + '</div>';
}

function fleetSection(fleet: FleetRow[]): string {
  const boards = [...new Set(fleet.map((f) => f.board))];
  if (!boards.length) return '<p class="none">No device has checked in yet.</p>';
  return boards.map((b) => {
    const rows = fleet.filter((f) => f.board === b);
    const total = rows.reduce((a, r) => a + r.count, 0);
    return `<div class="board" data-board="${h(b)}"><h3>${h(b)} <small>${total} device${total === 1 ? '' : 's'}</small></h3>
<table><thead><tr><th>version</th><th>devices</th><th></th></tr></thead><tbody>
${rows.map((r) => `<tr data-version="${h(r.version)}"><td>${h(r.version)}</td><td class="num">${r.count}</td><td class="w">${bar([{ n: r.count, cls: 'ok', title: r.version }], total)}</td></tr>`).join('\n')}
</tbody></table></div>`;
  }).join('\n');
}

function rolloutsSection(rollouts: RolloutStatus[]): string {
  if (!rollouts.length) return '<p class="none">No rollouts yet: <code>signet rollout create</code>.</p>';
  return `<table id="rollouts"><thead><tr><th>id</th><th>board / channel</th><th>version</th><th>state</th><th>percent</th>
<th>progress</th><th>confirmed</th><th>failed</th><th>failure rate</th><th>halt at</th></tr></thead><tbody>
${rollouts.map((r) => {
    const c = r.counts;
    const inFlight = c.offered + c.downloading + c.staged + c['booted-trial'];
    const total = Math.max(r.expected, c.confirmed + c.failed + inFlight, 1);
    return `<tr data-rollout="${h(r.id)}" data-state="${h(r.state)}">
<td>${h(r.id)}</td><td>${h(r.board)} / ${h(r.channel)}</td><td>${/\.itb$/.test(r.target) ? 'boot image ' : ''}${h(r.version)}</td>
<td><span class="state ${h(r.state)}">${h(r.state)}</span>${r.reason ? `<div class="reason">${h(r.reason)}</div>` : ''}</td>
<td class="num">${r.percent}%</td>
<td class="w">${bar([{ n: c.confirmed, cls: 'ok', title: 'confirmed' }, { n: inFlight, cls: 'busy', title: 'in progress' }, { n: c.failed, cls: 'bad', title: 'failed' }], total)}
<small>${c.confirmed + c.failed} of ~${r.expected} finished</small></td>
<td class="num">${c.confirmed}</td><td class="num">${c.failed}</td>
<td class="num rate">${(r.failureRate * 100).toFixed(1)}%</td><td class="num">${(r.haltFailureRate * 100).toFixed(1)}%</td></tr>`;
  }).join('\n')}
</tbody></table>`;
}

function devicesSection(now: number, devices: DeviceRecord[], revoked: Set<string>): string {
  if (!devices.length) return '<p class="none">No devices.</p>';
  return `<table id="devices"><thead><tr><th>device</th><th>board</th><th>version</th><th>channel</th><th>slot</th><th>status</th>
<th>last check-in</th><th>last error</th><th>boot image</th></tr></thead><tbody>
${devices.map((d) => `<tr data-device="${h(d.id)}"${revoked.has(d.id) ? ' class="revoked"' : ''}>
<td>${h(d.id)}${revoked.has(d.id) ? ' <span class="state halted">revoked</span>' : ''}</td><td>${h(d.board)}</td><td>${h(d.version)}</td>
<td>${h(d.channel)}</td><td>${h(d.slot)}</td><td>${h(d.status ?? '')}</td>
<td title="${iso(d.lastCheckin)}">${ago(now, d.lastCheckin)}</td>
<td class="err">${d.lastError ? `${h(d.lastError)} <small>${d.lastErrorAt ? ago(now, d.lastErrorAt) : ''}</small>` : ''}</td>
<td class="boot">${d.boot ? `${h(d.boot.version)} <small>#${d.boot.securityCounter} slot ${h(d.boot.slot)}</small>` : ''}</td></tr>`).join('\n')}
</tbody></table>`;
}

/** What an audit record's detail says, in a few words. */
export function describeAudit(r: AuditRecord): string {
  const d = r.detail;
  switch (r.action) {
    case 'rollout.create': return `${d.board}/${d.channel} ${d.version} at ${d.percent}% (halts above ${d.haltFailureRate})`;
    case 'rollout.promote': return `${d.from}% → ${d.percent}%`;
    case 'rollout.pause': case 'rollout.resume': return `${d.from} → ${d.state}`;
    case 'rollout.halt': return String(d.reason);
    case 'device.revoke': return `reason: ${d.reason}`;
    case 'device.enroll': return `${d.board}/${d.channel}, certificate ${String(d.serial ?? '').slice(0, 16)}`;
    case 'publish': return ((d.added as { name: string }[] | undefined) ?? []).map((a) => a.name).join(', ') || 'no new target';
    case 'blob.upload': return `${d.length} bytes${d.stored ? '' : ' (already held)'}`;
    case 'blob.collect': return `${d.length} bytes, named by no metadata`;
    default: return JSON.stringify(d);
  }
}

function auditSection(audit: AuditRecord[]): string {
  if (!audit.length) return '<p class="none">No admin actions yet.</p>';
  return `<table id="audit"><thead><tr><th>when</th><th>who</th><th>action</th><th>subject</th><th>detail</th></tr></thead><tbody>
${[...audit].reverse().map((r) => `<tr data-action="${h(r.action)}"><td>${iso(r.at)}</td><td>${h(r.actor)}</td><td>${h(r.action)}</td><td>${h(r.subject)}</td><td>${h(describeAudit(r))}</td></tr>`).join('\n')}
</tbody></table>`;
}

export function renderDashboard(d: DashboardData): string {
  const total = d.fleet.reduce((a, r) => a + r.count, 0);
  const active = d.rollouts.filter((r) => r.state === 'active').length;
  const halted = d.rollouts.filter((r) => r.state === 'halted').length;
  const revoked = new Set(d.revocations.map((r) => r.id));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Signet update server</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:12px 24px;display:flex;gap:32px;align-items:baseline}
header h1{font-size:18px;margin:0}header .k{opacity:.7;margin-right:4px}
main{padding:8px 24px 32px;display:grid;gap:16px}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:8px 16px 16px}
h2{font-size:16px;margin:8px 0}h3{font-size:14px;margin:12px 0 4px}h3 small{font-weight:normal;color:#667}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}
th{font-weight:600;color:#556;font-size:12px}td.num{text-align:right;font-variant-numeric:tabular-nums}td.w{width:30%}.board table{max-width:760px}
.bar{display:flex;height:10px;background:#eef0f3;border-radius:3px;overflow:hidden;min-width:120px}
.bar span{display:block;height:100%}.ok{background:#2f9e58}.busy{background:#e0a526}.bad{background:#d64545}
.state{display:inline-block;padding:0 6px;border-radius:3px;font-size:12px;background:#dde1e8}
.state.active{background:#d4f0de;color:#1e6b3b}.state.halted{background:#f8d7d7;color:#8a1f1f}.state.paused{background:#fbecc7;color:#7a5600}
.reason{font-size:12px;color:#8a1f1f;max-width:360px}.err{color:#8a1f1f}.none{color:#667}tr.revoked td{color:#999}
</style></head><body>
<header><h1>Signet update server</h1>
<span><span class="k">devices</span><b id="device-count">${total}</b></span>
<span><span class="k">rollouts active</span><b>${active}</b></span>
<span><span class="k">halted</span><b id="halted-count">${halted}</b></span>
<span><span class="k">targets</span><b>${d.repository.targetCount}</b></span>
<span><span class="k">metadata</span>root v${d.repository.root} · targets v${d.repository.targets} · snapshot v${d.repository.snapshot} · timestamp v${d.repository.timestamp}</span>
<span class="k">as of ${iso(d.now)}</span></header>
<main>
<section id="fleet"><h2>Fleet by board and version</h2>${fleetSection(d.fleet)}</section>
<section id="rollout-section"><h2>Rollouts</h2>${rolloutsSection(d.rollouts)}</section>
<section id="device-section"><h2>Devices</h2>${devicesSection(d.now, d.devices, revoked)}</section>
<section id="audit-section"><h2>Audit log <small>(newest first; all of it: <code>signet server audit</code>)</small></h2>${auditSection(d.audit)}</section>
</main></body></html>
`;
}
