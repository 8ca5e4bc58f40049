/**
 * Prometheus text exposition (format 0.0.4). Counters live in memory and restart at zero with
 * the process, as Prometheus expects of counters; rollout and fleet gauges are read from
 * storage at scrape time.
 */
import type { RolloutStatus } from './types';
import type { FleetRow, RolloutState } from './storage';
import { ROLLOUT_STATES } from './storage';

export class Metrics {
  checkins = 0;
  offers = 0;
  failures = 0;
  halts = 0;
  publishes = 0;
  downloads: Record<'metadata' | 'target', number> = { metadata: 0, target: 0 };
  downloadBytes: Record<'metadata' | 'target', number> = { metadata: 0, target: 0 };
  reports: Record<string, number> = {};
  refusals: Record<string, number> = {};
  uploadBytes = 0;
  blobsCollected = 0;
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labels(l: Record<string, string>): string {
  const parts = Object.keys(l).map((k) => `${k}="${esc(l[k])}"`);
  return parts.length ? '{' + parts.join(',') + '}' : '';
}

export function renderMetrics(m: Metrics, rollouts: RolloutStatus[], fleet: FleetRow[]): string {
  const out: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, rows: [Record<string, string>, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of rows) out.push(`${name}${labels(l)} ${v}`);
  };
  metric('signet_checkins_total', 'counter', 'Device check-ins.', [[{}, m.checkins]]);
  metric('signet_offers_total', 'counter', 'Updates offered to a device for the first time in a rollout.', [[{}, m.offers]]);
  metric('signet_downloads_total', 'counter', 'Successful GETs of TUF metadata and targets (HEAD requests not counted).',
    [[{ kind: 'metadata' }, m.downloads.metadata], [{ kind: 'target' }, m.downloads.target]]);
  metric('signet_download_bytes_total', 'counter', 'Bytes served for metadata and targets.',
    [[{ kind: 'metadata' }, m.downloadBytes.metadata], [{ kind: 'target' }, m.downloadBytes.target]]);
  metric('signet_reports_total', 'counter', 'Device status reports by status.',
    Object.keys(m.reports).sort().map((s) => [{ status: s }, m.reports[s]] as [Record<string, string>, number]));
  metric('signet_update_failures_total', 'counter', 'Reports of a failed update.', [[{}, m.failures]]);
  metric('signet_rollout_halts_total', 'counter', 'Rollouts halted by their failure-rate rule.', [[{}, m.halts]]);
  metric('signet_publishes_total', 'counter', 'Releases published.', [[{}, m.publishes]]);
  metric('signet_upload_bytes_total', 'counter', 'Target bytes uploaded.', [[{}, m.uploadBytes]]);
  metric('signet_blobs_collected_total', 'counter', 'Uploaded blobs removed because no metadata named them.', [[{}, m.blobsCollected]]);
  metric('signet_refusals_total', 'counter', 'Requests refused, by error code.',
    Object.keys(m.refusals).sort().map((c) => [{ code: c }, m.refusals[c]] as [Record<string, string>, number]));
  const rl = (r: RolloutStatus) => ({ rollout: r.id, board: r.board, channel: r.channel, version: r.version });
  metric('signet_rollout_state', 'gauge', '1 for the state each rollout is in.',
    rollouts.flatMap((r) => ROLLOUT_STATES.map((s: RolloutState) => [{ ...rl(r), state: s }, r.state === s ? 1 : 0] as [Record<string, string>, number])));
  metric('signet_rollout_percent', 'gauge', 'Staged percentage of each rollout.', rollouts.map((r) => [rl(r), r.percent]));
  metric('signet_rollout_failure_rate', 'gauge', 'failed / (failed + confirmed) per rollout.', rollouts.map((r) => [rl(r), r.failureRate]));
  metric('signet_rollout_devices', 'gauge', 'Devices per rollout by update status.',
    rollouts.flatMap((r) => Object.keys(r.counts).map((s) => [{ ...rl(r), status: s }, r.counts[s as keyof typeof r.counts]] as [Record<string, string>, number])));
  metric('signet_devices', 'gauge', 'Devices by board and version (last check-in).', fleet.map((f) => [{ board: f.board, version: f.version }, f.count]));
  return out.join('\n') + '\n';
}
