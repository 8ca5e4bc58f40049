import { adminClientFor } from '../../ota/repository-http';
import { intOption, JSON_OPTION, need, UsageError, type Command, type RunContext } from '../command';
import { ADMIN_OPTIONS } from './publish';

interface RolloutView {
  id: string; board: string; channel: string; version: string; target: string; percent: number; haltFailureRate: number;
  minDevices: number; state: string; reason: string | null; failureRate: number; eligible: number; expected: number;
  counts: Record<string, number>;
}

function client(ctx: RunContext) {
  return adminClientFor(ctx.values.server as string | undefined, ctx.values.admin as string | undefined);
}

interface DeviceView {
  id: string; version: string; slot: string; boot: { version: string; securityCounter: number; slot: string } | null;
  status: string | null; code: string | null;
}

function show(ctx: RunContext, r: RolloutView): void {
  const c = r.counts;
  ctx.out(`${r.id}  ${r.board}/${r.channel}  ${/\.itb$/.test(r.target) ? 'boot image ' : ''}${r.version}  ${r.state}  ${r.percent}%  confirmed ${c.confirmed}, failed ${c.failed}, ` +
    `in progress ${c.offered + c.downloading + c.staged + c['booted-trial']}, ~${r.expected} of ${r.eligible} devices in scope, ` +
    `failure rate ${(r.failureRate * 100).toFixed(1)}% (halts above ${(r.haltFailureRate * 100).toFixed(1)}%)`);
  if (r.reason) ctx.out(`  ${r.state}: ${r.reason}`);
}

function rolloutId(ctx: RunContext): string {
  if (ctx.positionals.length !== 1 || !/^r\d{1,9}$/.test(ctx.positionals[0])) throw new UsageError('give one rollout id, e.g. r3 (see `signet rollout status`)');
  return ctx.positionals[0];
}

function rate(ctx: RunContext): number {
  const v = ctx.values['halt-failure-rate'];
  if (typeof v !== 'string' || !/^(0(\.\d+)?|1(\.0+)?)$/.test(v)) throw new UsageError('--halt-failure-rate must be a number from 0 to 1, e.g. 0.05');
  return Number(v);
}

export const rolloutCreate: Command = {
  path: ['rollout', 'create'],
  summary: 'start a staged rollout of a published version to a board\'s devices on a channel',
  options: {
    board: { type: 'string', valueName: 'id', description: 'board the release is for' },
    version: { type: 'string', valueName: 'semver', description: 'published app version to roll out' },
    'boot-version': { type: 'string', valueName: 'semver', description: 'published boot image (FIT) version to roll out to devices with A/B boot slots; with --version, a combined release (an app and a boot rollout)' },
    percent: { type: 'string', valueName: '0-100', description: 'share of devices offered the update (stable per device)' },
    'halt-failure-rate': { type: 'string', valueName: '0-1', description: 'halt when failed/(failed+confirmed) exceeds this' },
    channel: { type: 'string', valueName: 'name', description: 'device channel (default stable)' },
    'min-devices': { type: 'string', valueName: 'n', description: 'finished devices needed before the halt rule applies (default 3)' },
    name: { type: 'string', valueName: 'service', description: 'service name, when several services share board and version' },
    ...ADMIN_OPTIONS,
    ...JSON_OPTION,
  },
  details: [
    'A new rollout supersedes an active or paused one of its kind (app image or boot image) for the same board and channel.',
    'A combined release (--version and --boot-version) is an app rollout and a boot-image rollout with the same percentage and halt rule.',
  ],
  async run(ctx) {
    const app = ctx.values.version as string | undefined;
    const boot = ctx.values['boot-version'] as string | undefined;
    if (app === undefined && boot === undefined) throw new UsageError('give --version (app image), --boot-version (boot image), or both');
    const base: Record<string, unknown> = {
      board: need(ctx, 'board'), percent: intOption(ctx, 'percent', 0, 100) ?? need(ctx, 'percent'), haltFailureRate: rate(ctx),
    };
    if (ctx.values.channel) base.channel = ctx.values.channel;
    const min = intOption(ctx, 'min-devices', 1, 1_000_000);
    if (min !== undefined) base.minDevices = min;
    const made: RolloutView[] = [];
    const c = client(ctx);
    if (app !== undefined) made.push(await c.json<RolloutView>('POST', '/api/v1/rollouts', { ...base, version: app, ...(ctx.values.name ? { name: ctx.values.name } : {}) }));
    if (boot !== undefined) made.push(await c.json<RolloutView>('POST', '/api/v1/rollouts', { ...base, version: boot, kind: 'boot' }));
    if (ctx.json) ctx.out(JSON.stringify(made.length === 1 ? made[0] : made, null, 2));
    else for (const r of made) show(ctx, r);
  },
};

export const rolloutStatus: Command = {
  path: ['rollout', 'status'],
  summary: 'show one rollout, or all of them: state, percentage, progress, failure rate, halt reason',
  args: '[rollout-id]',
  options: { ...ADMIN_OPTIONS, ...JSON_OPTION },
  async run(ctx) {
    const c = client(ctx);
    const list = ctx.positionals.length ? [await c.json<RolloutView>('GET', '/api/v1/rollouts/' + rolloutId(ctx))]
      : (await c.json<{ rollouts: RolloutView[] }>('GET', '/api/v1/rollouts')).rollouts;
    // One rollout: also its devices with the app and boot image each reports running.
    const devices = ctx.positionals.length ? (await c.json<{ devices: DeviceView[] }>('GET', `/api/v1/rollouts/${list[0].id}/devices`)).devices : null;
    if (ctx.json) ctx.out(JSON.stringify(ctx.positionals.length ? { ...list[0], devices } : list, null, 2));
    else if (!list.length) ctx.out('no rollouts');
    else for (const r of list) show(ctx, r);
    if (!ctx.json && devices) {
      for (const d of devices) {
        ctx.out(`  ${d.id}  app ${d.version} (slot ${d.slot})  boot ${d.boot ? `${d.boot.version} #${d.boot.securityCounter} (slot ${d.boot.slot})` : '-'}` +
          `  ${d.status ?? 'not offered'}${d.code ? ' ' + d.code : ''}`);
      }
    }
  },
};

function action(name: 'pause' | 'resume' | 'promote', summary: string, extra: Command['options'] = {}): Command {
  return {
    path: ['rollout', name],
    summary,
    args: '<rollout-id>',
    options: { ...extra, ...ADMIN_OPTIONS, ...JSON_OPTION },
    async run(ctx) {
      const id = rolloutId(ctx);
      const body: Record<string, unknown> = {};
      const p = name === 'promote' ? intOption(ctx, 'percent', 0, 100) : undefined;
      if (p !== undefined) body.percent = p;
      const r = await client(ctx).json<RolloutView>('POST', `/api/v1/rollouts/${id}/${name}`, body);
      if (ctx.json) ctx.out(JSON.stringify(r, null, 2));
      else show(ctx, r);
    },
  };
}

export const rolloutPause = action('pause', 'stop offering a rollout\'s update (devices already updating finish)');
export const rolloutResume = action('resume', 'offer a paused or halted rollout\'s update again');
export const rolloutPromote = action('promote', 'raise a rollout\'s percentage (default to 100)', {
  percent: { type: 'string', valueName: '0-100', description: 'new percentage (default 100)' },
});
