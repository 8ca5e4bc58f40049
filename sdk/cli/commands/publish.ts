import { adminClientFor } from '../../ota/repository-http';
import { publishRelease } from '../../ota/repository-publish';
import { loadSignerSpec } from '../../keys/signer-spec';
import { intOption, JSON_OPTION, need, onePositional, type Command } from '../command';

export const ADMIN_OPTIONS = {
  server: { type: 'string', valueName: 'url', description: 'update server (default $SIGNET_SERVER or https://localhost:8443)' },
  admin: { type: 'string', valueName: 'folder', description: 'admin identity from `signet device enroll --admin` (default $SIGNET_ADMIN or ./admin)' },
} as const;

export const publish: Command = {
  path: ['publish'],
  summary: 'publish a release: verify, sign targets metadata offline with the targets key(s), upload to the update server',
  args: '<image.simg|boot.itb>',
  options: {
    keys: { type: 'string', valueName: 'folder', description: 'root.json and the targets-*.key files (offline keys; never sent)' },
    key: { type: 'string', multiple: true, valueName: 'file|pkcs11:uri', description: 'sign the targets metadata with this key instead of the folder\'s targets-*.key (repeatable)' },
    ...ADMIN_OPTIONS,
    'targets-expires-days': { type: 'string', valueName: 'days', description: 'lifetime of the new targets metadata (default 365)' },
    ...JSON_OPTION,
  },
  details: [
    'Only signatures leave this machine. The server adds snapshot and timestamp with its online keys.',
    'A boot image (FIT from `signet fit`) becomes a target of its own kind, <board>/boot-<version>.itb, with its own security counter; it must verify against <keys>/fit.key.',
  ],
  async run(ctx) {
    const image = onePositional(ctx, 'image file');
    const specs = (ctx.values.key as string[] | undefined) ?? [];
    const signers = specs.length ? await Promise.all(specs.map((s) => loadSignerSpec(s))) : undefined;
    const r = await publishRelease({
      signers,
      imagePath: image,
      keysDir: need(ctx, 'keys'),
      transport: adminClientFor(ctx.values.server as string | undefined, ctx.values.admin as string | undefined),
      targetsExpiresDays: intOption(ctx, 'targets-expires-days', 1, 3650),
    });
    if (ctx.json) {
      ctx.out(JSON.stringify(r, null, 2));
      return;
    }
    if (r.alreadyPublished) ctx.out(`${r.name} was already published (targets version ${r.targetsVersion}); nothing to sign`);
    else ctx.out(`published ${r.name} (${r.length} bytes, sha256 ${r.sha256.slice(0, 16)}…): targets v${r.targetsVersion} with ${r.signatures} signature(s), snapshot v${r.snapshotVersion}, timestamp v${r.timestampVersion}`);
    ctx.out(`  next: signet rollout create --board ${r.board} --${r.kind === 'boot' ? 'boot-version' : 'version'} ${r.version} --percent 10 --halt-failure-rate 0.05`);
  },
};
