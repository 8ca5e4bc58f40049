import { basename, resolve } from 'node:path';
import { loadBoard } from '../../board';
import { SEMVER } from '../../image/manifest';
import { intOption, JSON_OPTION, need, onePositional, UsageError, type Command } from '../command';

export const init: Command = {
  path: ['init'],
  summary: 'create a service project: signet.json and src/main.ts (prints a line and confirms)',
  args: '<folder>',
  options: {
    board: { type: 'string', valueName: 'id', description: 'target board (see `signet boards`)' },
    name: { type: 'string', valueName: 'name', description: 'service name (default: the folder name)' },
    ...JSON_OPTION,
  },
  async run(ctx) {
    const dir = onePositional(ctx, 'project folder');
    const board = loadBoard(need(ctx, 'board'));
    const name = (ctx.values.name as string | undefined) ?? basename(resolve(dir));
    const { scaffoldProject } = await import('../../build/scaffold');
    const cfg = await scaffoldProject(dir, { name, board: board.id });
    if (ctx.json) ctx.out(JSON.stringify({ dir, ...cfg }));
    else {
      ctx.out(`created ${dir}: ${cfg.name} for ${cfg.board}`);
      ctx.out(`next: signet keys init --dir keys && signet build --project ${dir} --version 0.1.0 --security-counter 1 --keys keys --out app.simg`);
    }
  },
};

export const build: Command = {
  path: ['build'],
  summary: 'bundle a service for its board (ES5), wrap it in a signed app image',
  options: {
    project: { type: 'string', valueName: 'folder', description: 'project folder holding signet.json (default .)' },
    version: { type: 'string', valueName: 'semver', description: 'release version, e.g. 1.2.0' },
    'security-counter': { type: 'string', valueName: 'N', description: 'anti-rollback counter; devices refuse lower ones' },
    keys: { type: 'string', valueName: 'folder', description: 'key folder; signs with <folder>/targets-1.key' },
    key: { type: 'string', valueName: 'file|pkcs11:uri', description: 'sign with this targets key instead (a file, or a key in a PKCS#11 token)' },
    out: { type: 'string', valueName: 'file', description: 'the image to write (.simg)' },
    'expires-days': { type: 'string', valueName: 'days', description: 'image refused by devices after this many days' },
    'no-typecheck': { type: 'boolean', description: 'skip the TypeScript type check' },
    ...JSON_OPTION,
  },
  details: ['Set SOURCE_DATE_EPOCH for a reproducible build time.', 'Add more signatures with `signet sign`.'],
  async run(ctx) {
    const version = need(ctx, 'version');
    if (!SEMVER.test(version)) throw new UsageError(`--version must be a semantic version like 1.2.0, got "${version}"`);
    const securityCounter = intOption(ctx, 'security-counter', 0, 0xffffffff);
    if (securityCounter === undefined) throw new UsageError('--security-counter is required');
    if (!ctx.values.keys && !ctx.values.key) throw new UsageError('--keys or --key is required');
    // Loaded on demand: esbuild and TypeScript are heavy, and only `build` needs them.
    const { buildRelease } = await import('../../image/release');
    const r = await buildRelease({
      projectDir: (ctx.values.project as string | undefined) ?? '.',
      version,
      securityCounter,
      keysDir: ctx.values.keys as string | undefined,
      keyPath: ctx.values.key as string | undefined,
      out: need(ctx, 'out'),
      expiresInDays: intOption(ctx, 'expires-days', 1, 36500),
      typecheck: ctx.values['no-typecheck'] !== true,
    });
    if (ctx.json) {
      ctx.out(JSON.stringify({ out: r.out, bytes: r.bytes, name: r.manifest.name, version: r.manifest.version, board: r.manifest.board, keyid: r.keyid, modules: r.modules }, null, 2));
      return;
    }
    const byKind = (k: string) => r.modules.filter((m) => m.kind === k).reduce((n, m) => n + m.bytes, 0);
    ctx.out(`built ${r.out}: ${r.manifest.name} ${r.manifest.version} for ${r.manifest.board}, ${r.bytes} bytes`);
    ctx.out(`  code: app ${byKind('app')} B, sdk ${byKind('sdk')} B, third-party ${byKind('third-party')} B (${r.modules.length} modules)`);
    ctx.out(`  signed by ${r.keyid.slice(0, 16)}`);
  },
};
