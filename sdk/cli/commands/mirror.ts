import { loadIdentity } from '../../keys/device';
import { MirrorError } from '../../mirror/errors';
import { DEFAULT_GRACE_S, syncMirror, type MirrorSyncResult } from '../../mirror/sync';
import { ADMIN_ENV, DEFAULT_SERVER, SERVER_ENV } from '../../ota/repository-http';
import { MAX_ROOT_BYTES } from '../../ota/root-file';
import { readInputFile } from '../../util/files';
import { JSON_OPTION, type Command, type RunContext } from '../command';
import { ADMIN_OPTIONS } from './publish';

function seconds(ctx: RunContext, name: string, min: number, max: number): number | undefined {
  const v = ctx.values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d{1,9}$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new MirrorError('E_MIRROR_OPTION', `--${name} must be whole seconds from ${min} to ${max}, got ${JSON.stringify(String(v).slice(0, 40))}`);
  }
  return Number(v);
}

function line(to: string, r: MirrorSyncResult): string {
  const v = `timestamp v${r.timestampVersion}, snapshot v${r.snapshotVersion}, targets v${r.targetsVersion}, root v${r.rootVersion}`;
  return r.changed
    ? `mirror ${to}: ${v}; ${r.added.length} file(s) written, ${r.pruned.length} pruned`
    : `mirror ${to}: up to date (${v}); ${r.pruned.length} pruned`;
}

export const mirrorSync: Command = {
  path: ['mirror', 'sync'],
  summary: 'export the TUF repository (consistent-snapshot metadata and targets) to a folder any static web server or CDN can serve',
  options: {
    to: { type: 'string', valueName: 'folder', description: 'the mirror folder (new, empty, or written by an earlier sync)' },
    ...ADMIN_OPTIONS,
    root: { type: 'string', valueName: 'root.json', description: 'verify the export from this root (default: the server\'s 1.root.json)' },
    watch: { type: 'boolean', description: 'keep syncing every --interval seconds until SIGINT or SIGTERM' },
    interval: { type: 'string', valueName: 's', description: 'seconds between syncs with --watch (default 60; keep it well under half the timestamp lifetime)' },
    grace: { type: 'string', valueName: 's', description: `keep files the current snapshot no longer names this long (default ${DEFAULT_GRACE_S})` },
    ...JSON_OPTION,
  },
  details: [
    'Serve <folder> as is: devices list its URL in their mirrors; metadata/ and targets/ lie under it.',
    'Targets and versioned metadata are written first, timestamp.json last (each by rename): a reader never sees a snapshot whose files are missing.',
  ],
  async run(ctx) {
    const to = ctx.values.to;
    if (typeof to !== 'string' || to === '') throw new MirrorError('E_MIRROR_OPTION', '--to is required: the folder to export the repository to');
    const interval = seconds(ctx, 'interval', 1, 86_400);
    if (interval !== undefined && ctx.values.watch !== true) throw new MirrorError('E_MIRROR_OPTION', '--interval goes with --watch');
    const graceS = seconds(ctx, 'grace', 0, 365 * 86_400);
    const rootBytes = typeof ctx.values.root === 'string' ? readInputFile(ctx.values.root, MAX_ROOT_BYTES, 'root metadata file (root.json)') : undefined;
    const id = loadIdentity((ctx.values.admin as string | undefined) || process.env[ADMIN_ENV] || 'admin');
    const opts = {
      server: (ctx.values.server as string | undefined) || process.env[SERVER_ENV] || DEFAULT_SERVER,
      tls: { certPem: id.certPem, keyPem: id.keyPem, caPem: id.caPem }, to, rootBytes, graceS,
    };
    const report = (r: MirrorSyncResult) => ctx.out(ctx.json ? JSON.stringify(r) : line(to, r));
    if (ctx.values.watch !== true) {
      report(await syncMirror(opts));
      return;
    }
    // --watch: the first sync must work (a wrong folder, server or identity is an error);
    // after that a failed round is one line on stderr and the next round tries again.
    report(await syncMirror(opts));
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    let wake: () => void = () => undefined;
    const stop = () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      wake();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    try {
      while (!stopped) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, (interval ?? 60) * 1000);
        });
        if (stopped) break;
        try {
          report(await syncMirror(opts));
        } catch (e) {
          const err = e as { line?: () => string; message?: string };
          ctx.err(typeof err.line === 'function' ? err.line() : String(err.message));
        }
      }
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  },
};
