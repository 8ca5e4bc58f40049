import { envOrPromptPassphrase, PASSPHRASE_ENV } from '../../keys/passphrase';
import { intOption, JSON_OPTION, need, type Command } from '../command';

export const keysInit: Command = {
  path: ['keys', 'init'],
  summary: 'create a key set: root (k-of-n), targets (k-of-n), snapshot, timestamp, root.json, vendor CA, FIT RSA key',
  options: {
    dir: { type: 'string', valueName: 'folder', description: 'where to write the keys (must not exist or be empty)' },
    threshold: { type: 'string', valueName: 'k', description: 'signatures required for root and targets (default 1)' },
    count: { type: 'string', valueName: 'n', description: 'root and targets keys to create (default: the threshold)' },
    encrypt: { type: 'boolean', description: `protect private keys with a passphrase (from ${PASSPHRASE_ENV} or a prompt)` },
    'root-expires-days': { type: 'string', valueName: 'days', description: 'root metadata lifetime (default 365)' },
    vendor: { type: 'string', valueName: 'name', description: 'vendor name for the CA certificate' },
    ...JSON_OPTION,
  },
  details: ['Passphrases are never taken on the command line.', 'Keep root-*.key and targets-*.key offline; snapshot.key and timestamp.key go to the update server.'],
  async run(ctx) {
    const dir = need(ctx, 'dir');
    const threshold = intOption(ctx, 'threshold', 1, 16);
    const count = intOption(ctx, 'count', 1, 16) ?? threshold;
    const passphrase = ctx.values.encrypt ? await envOrPromptPassphrase.get('the new keys', true) : undefined;
    const { initKeys } = await import('../../keys/keyset'); // node-forge loads only here
    const r = await initKeys({
      dir,
      threshold,
      count,
      passphrase,
      rootExpiresDays: intOption(ctx, 'root-expires-days', 1, 3650),
      vendorName: ctx.values.vendor as string | undefined,
    });
    if (ctx.json) {
      ctx.out(JSON.stringify({ dir: r.dir, files: r.files, roles: r.root.roles, expires: r.root.expires }, null, 2));
      return;
    }
    ctx.out(`wrote ${r.files.length} files to ${r.dir}`);
    for (const role of ['root', 'targets', 'snapshot', 'timestamp'] as const) {
      const x = r.root.roles[role];
      ctx.out(`  ${role.padEnd(9)} ${x.threshold}-of-${x.keyids.length}  ${x.keyids.map((k) => k.slice(0, 12)).join(' ')}`);
    }
    ctx.out(`  root.json version ${r.root.version}, expires ${r.root.expires}`);
    ctx.out(`  vendor-ca.crt (X.509, RSA-2048), fit.key (RSA-2048 for U-Boot FIT)`);
  },
};
