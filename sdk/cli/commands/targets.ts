import { loadSignerSpec } from '../../keys/signer-spec';
import { adminClientFor } from '../../ota/repository-http';
import { resignTargets } from '../../ota/repository-publish';
import { intOption, JSON_OPTION, need, type Command } from '../command';
import { ADMIN_OPTIONS } from './publish';

export const targetsResign: Command = {
  path: ['targets', 'resign'],
  summary: 're-sign the server\'s current targets metadata with the targets key(s) of the root in force (after a targets-key rotation)',
  options: {
    keys: { type: 'string', valueName: 'folder', description: 'root.json (+ earlier N.root.json) and the new targets-*.key files' },
    key: { type: 'string', multiple: true, valueName: 'file|pkcs11:uri', description: 'sign with this key instead of the folder\'s targets-*.key (repeatable)' },
    remove: { type: 'string', multiple: true, valueName: 'target', description: 'leave this target out, e.g. board/name-1.2.0.simg (repeatable; after a stolen key)' },
    ...ADMIN_OPTIONS,
    'targets-expires-days': { type: 'string', valueName: 'days', description: 'lifetime of the new targets metadata (default 365)' },
    ...JSON_OPTION,
  },
  details: ['The same entries, checked against the root whose keys signed them, as the next version. Nothing is added; only --remove drops.'],
  async run(ctx) {
    const keysDir = need(ctx, 'keys');
    const days = intOption(ctx, 'targets-expires-days', 1, 3650);
    const specs = (ctx.values.key as string[] | undefined) ?? [];
    const signers = specs.length ? await Promise.all(specs.map((s) => loadSignerSpec(s))) : undefined;
    const r = await resignTargets({
      keysDir, signers, targetsExpiresDays: days, remove: (ctx.values.remove as string[] | undefined) ?? [],
      transport: adminClientFor(ctx.values.server as string | undefined, ctx.values.admin as string | undefined),
    });
    if (ctx.json) {
      ctx.out(JSON.stringify(r, null, 2));
      return;
    }
    ctx.out(`re-signed ${r.targets.length} target(s) signed under root v${r.signedUnderRoot} with ${r.signatures} key(s) of root v${r.rootVersion}: targets v${r.targetsVersion}, snapshot v${r.snapshotVersion}, timestamp v${r.timestampVersion}`);
    for (const t of r.targets) ctx.out(`  ${t.name}  ${t.sha256.slice(0, 16)}…  ${t.length} bytes`);
    for (const n of r.removed) ctx.out(`  removed ${n}`);
  },
};
