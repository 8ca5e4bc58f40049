import { prepareServerKeys, startServer } from '../../../update-server/start';
import { intOption, JSON_OPTION, need, type Command } from '../command';

export const server: Command = {
  path: ['server'],
  summary: 'run the OTA update server: TUF repository, device check-ins, rollouts, dashboard, metrics (HTTPS, mutual TLS)',
  options: {
    data: { type: 'string', valueName: 'folder', description: 'where the SQLite database and target blobs live (created if missing)' },
    keys: { type: 'string', valueName: 'folder', description: 'online keys only: snapshot.key, timestamp.key, root.json, vendor-ca.crt (+ server.crt/.key)' },
    port: { type: 'string', valueName: 'n', description: 'TCP port (default 8443; 0 picks a free one)' },
    bind: { type: 'string', valueName: 'address', description: 'address to listen on (default 127.0.0.1)' },
    host: { type: 'string', multiple: true, valueName: 'name', description: 'name for a certificate issued on first start (repeatable; default localhost, 127.0.0.1, ::1)' },
    'no-open-local': { type: 'boolean', description: 'require an admin certificate for /dashboard and /metrics on loopback too' },
    ...JSON_OPTION,
  },
  details: [
    'Refuses to start when --keys holds root-*.key, targets-*.key or fit.key: those stay offline.',
    'On first start without server.crt, issues one from vendor-ca.key (if present) into <data>/tls.',
    'Runs until SIGINT or SIGTERM. Dashboard: https://HOST:PORT/dashboard, metrics: /metrics.',
  ],
  async run(ctx) {
    const running = await startServer({
      dataDir: need(ctx, 'data'),
      keysDir: need(ctx, 'keys'),
      port: intOption(ctx, 'port', 0, 65535) ?? 8443,
      bind: ctx.values.bind as string | undefined,
      hosts: ctx.values.host as string[] | undefined,
      openLocal: ctx.values['no-open-local'] !== true,
    });
    if (ctx.json) ctx.out(JSON.stringify({ url: running.url, port: running.listening.port, tlsCreated: running.tlsCreated }));
    else {
      if (running.tlsCreated) ctx.out('issued a server certificate from the vendor CA');
      ctx.out(`signet server listening on ${running.url} (dashboard ${running.url}/dashboard)`);
    }
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
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
    out: { type: 'string', valueName: 'folder', description: 'where to write the server\'s keys (must not exist or be empty)' },
    host: { type: 'string', multiple: true, valueName: 'name', description: 'DNS name or IP address the server is reached by (repeatable; default localhost, 127.0.0.1, ::1)' },
    ...JSON_OPTION,
  },
  details: ['Nothing offline is copied: no root, targets, FIT or CA private key.'],
  async run(ctx) {
    const r = await prepareServerKeys({ keysDir: need(ctx, 'keys'), outDir: need(ctx, 'out'), hosts: ctx.values.host as string[] | undefined });
    if (ctx.json) ctx.out(JSON.stringify(r));
    else ctx.out(`wrote ${r.files.join(', ')} to ${r.outDir}`);
  },
};
