import { describeAudit } from '../../../update-server/dashboard';
import { readAuditLog } from '../../../update-server/storage-sqlite';
import { logEvent, prepareServerKeys, startServer } from '../../../update-server/start';
import { ACCESS_LOG_SINKS, type AccessLogSink } from '../../../update-server/access-log';
import { parseLimitArgs } from '../../../update-server/limits';
import { parseServerHosts } from '../../keys/host-names';
import { intOption, JSON_OPTION, need, UsageError, type Command, type RunContext } from '../command';

/** `--host` values, checked before anything is read or started (E_HOST_NAME). */
function hostsOption(ctx: RunContext): string[] | undefined {
  const hosts = ctx.values.host as string[] | undefined;
  if (hosts) parseServerHosts(hosts);
  return hosts;
}

/** `--limit NAME=VALUE`, checked before anything is read or started. */
function limitsOption(ctx: RunContext) {
  try {
    return parseLimitArgs((ctx.values.limit as string[] | undefined) ?? []);
  } catch (e) {
    throw new UsageError((e as Error).message, 'see "Threat model and limits" in docs/update-server.md');
  }
}

function accessLogOption(ctx: RunContext): AccessLogSink | undefined {
  const v = ctx.values['access-log'] as string | undefined;
  if (v !== undefined && !(ACCESS_LOG_SINKS as readonly string[]).includes(v)) {
    throw new UsageError(`--access-log must be one of ${ACCESS_LOG_SINKS.join(', ')}`, 'stderr is the default');
  }
  return v as AccessLogSink | undefined;
}

export const server: Command = {
  path: ['server'],
  summary: 'run the OTA update server: TUF repository, device check-ins, rollouts, dashboard, metrics (HTTPS, mutual TLS)',
  options: {
    data: { type: 'string', valueName: 'folder', description: 'where the SQLite database and target blobs live (created if missing)' },
    keys: { type: 'string', valueName: 'folder', description: 'online keys only: snapshot.key, timestamp.key, root.json, vendor-ca.crt (+ server.crt/.key)' },
    db: { type: 'string', valueName: 'url', description: 'postgres://… keeps state in PostgreSQL, shared by replicas (default: sqlite, <data>/signet.db)' },
    port: { type: 'string', valueName: 'n', description: 'TCP port (default 8443; 0 picks a free one)' },
    bind: { type: 'string', valueName: 'address', description: 'address to listen on (default 127.0.0.1)' },
    host: { type: 'string', multiple: true, valueName: 'name', description: 'name for a certificate issued on first start (repeatable; default localhost, 127.0.0.1, ::1)' },
    'open-local': { type: 'boolean', description: 'serve /dashboard and /metrics to loopback clients without a certificate (off by default: any local proxy would pass it on)' },
    limit: { type: 'string', multiple: true, valueName: 'name=n', description: 'change one connection or rate limit, e.g. device-rate-per-s=5 (repeatable; names and defaults in docs/update-server.md)' },
    'access-log': { type: 'string', valueName: 'sink', description: 'one JSON line per request to stderr (default), file (<data>/access.log) or off' },
    ...JSON_OPTION,
  },
  details: [
    'Refuses to start when --keys holds root-*.key, targets-*.key or fit.key: those stay offline.',
    'On first start without server.crt, issues one from vendor-ca.key (if present) into <data>/tls.',
    'Runs until SIGINT or SIGTERM. SIGHUP reloads the online keys from --keys (a key rotation without restart; a set the root in force does not name is refused and the keys in force stay). Dashboard: https://HOST:PORT/dashboard, metrics: /metrics.',
  ],
  async run(ctx) {
    const running = await startServer({
      dataDir: need(ctx, 'data'),
      keysDir: need(ctx, 'keys'),
      db: ctx.values.db as string | undefined,
      port: intOption(ctx, 'port', 0, 65535) ?? 8443,
      bind: ctx.values.bind as string | undefined,
      hosts: hostsOption(ctx),
      openLocal: ctx.values['open-local'] === true,
      limits: limitsOption(ctx),
      accessLog: accessLogOption(ctx),
      safetyNet: true,
    });
    if (ctx.json) ctx.out(JSON.stringify({ url: running.url, port: running.listening.port, tlsCreated: running.tlsCreated }));
    else {
      if (running.tlsCreated) ctx.out('issued a server certificate from the vendor CA');
      ctx.out(`signet server listening on ${running.url} (dashboard ${running.url}/dashboard)`);
    }
    // SIGHUP: take the online keys now in --keys (a rotation); a refused set leaves the old in force.
    const reload = () => {
      running.reloadKeys().then(
        (k) => process.stderr.write(JSON.stringify({ time: new Date().toISOString(), event: 'keys-reloaded', snapshot: k.snapshot, timestamp: k.timestamp }) + '\n'),
        (e) => logEvent('keys-reload-refused', e),
      );
    };
    process.on('SIGHUP', reload);
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        process.off('SIGHUP', reload);
        running.close().then(resolve, resolve);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
  },
};

export const serverKeys: Command = {
  path: ['server', 'keys'],
  summary: 'prepare a server keys folder: online keys, root.json, vendor CA certificate, and a server TLS certificate',
  options: {
    keys: { type: 'string', valueName: 'folder', description: 'the full key set from `signet keys init`' },
    'ca-key': { type: 'string', valueName: 'pkcs11:uri', description: 'the vendor CA key in a PKCS#11 token (RSA), instead of vendor-ca.key in --keys' },
    out: { type: 'string', valueName: 'folder', description: 'where to write the server\'s keys (must not exist or be empty)' },
    host: { type: 'string', multiple: true, valueName: 'name', description: 'DNS name or IP address the server is reached by (repeatable; default localhost, 127.0.0.1, ::1)' },
    ...JSON_OPTION,
  },
  details: ['Nothing offline is copied: no root, targets, FIT or CA private key.'],
  async run(ctx) {
    const r = await prepareServerKeys({ keysDir: need(ctx, 'keys'), outDir: need(ctx, 'out'), hosts: hostsOption(ctx), caKey: ctx.values['ca-key'] as string | undefined });
    if (ctx.json) ctx.out(JSON.stringify(r));
    else ctx.out(`wrote ${r.files.join(', ')} to ${r.outDir}`);
  },
};

/** `--since`: an ISO 8601 date or time (UTC unless it says), unix seconds, or an age like 30m, 12h, 7d. */
export function parseSince(v: string, nowS = Math.floor(Date.now() / 1000)): number {
  const age = /^(\d{1,6})([smhd])$/.exec(v);
  if (age) return nowS - Number(age[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[age[2] as 's' | 'm' | 'h' | 'd'];
  if (/^\d{1,12}$/.test(v)) return Number(v);
  if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(v)) {
    const t = Date.parse(/[T ]/.test(v) && !/(Z|[+-]\d{2}:?\d{2})$/.test(v) ? v.replace(' ', 'T') + 'Z' : v);
    if (Number.isFinite(t)) return Math.floor(t / 1000);
  }
  throw new UsageError(`--since must be a date (2026-01-31 or 2026-01-31T12:00Z), unix seconds, or an age like 30m, 12h, 7d; got "${v.slice(0, 60)}"`);
}

export const serverAudit: Command = {
  path: ['server', 'audit'],
  summary: 'print the audit log: who created, paused, resumed or promoted a rollout, revoked or enrolled a device, published what',
  options: {
    data: { type: 'string', valueName: 'folder', description: 'the server\'s data folder (read-only; the server may be running)' },
    since: { type: 'string', valueName: 'when', description: 'only records from then on: 2026-01-31, 2026-01-31T12:00Z, unix seconds, or an age (30m, 12h, 7d)' },
    ...JSON_OPTION,
  },
  details: ['One line per record, oldest first: time, who, action, subject, detail. --json prints the records as an array.'],
  async run(ctx) {
    const since = typeof ctx.values.since === 'string' ? parseSince(ctx.values.since) : undefined;
    const records = readAuditLog(need(ctx, 'data'), { since });
    if (ctx.json) {
      ctx.out(JSON.stringify(records, null, 2));
      return;
    }
    if (!records.length) ctx.out('no audit records' + (since !== undefined ? ' since ' + new Date(since * 1000).toISOString() : ''));
    for (const r of records) {
      ctx.out(`${new Date(r.at * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z')}  ${r.actor.padEnd(16)} ${r.action.padEnd(16)} ${r.subject.padEnd(16)} ${describeAudit(r)}`);
    }
  },
};
