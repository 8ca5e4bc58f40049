/**
 * `signet init`: a new service project that builds as it is. Written under a temp name and
 * renamed into place, so a failure leaves nothing half-made.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { createDirAtomic } from '../util/fs-atomic';
import { BuildError } from './errors';
import { sdkDir } from './modules';
import { PROJECT_FILE, validateProjectConfig, type ProjectConfig } from './project';

export interface ScaffoldOptions {
  name: string;
  board: string;
}

function mainSource(name: string): string {
  return [
    "import { confirm, log } from 'signet/runtime';",
    '',
    "log('hello from " + name + "');",
    '',
    '// Tell the boot stage this version is healthy: in a trial boot that makes it permanent.',
    '// A real service calls this once it is actually serving.',
    'confirm();',
    '',
  ].join('\n');
}

/** tsconfig.json for editors; `signet build` type-checks with the same settings on its own. */
function editorTsconfig(projectDir: string): string {
  let sdk = relative(projectDir, sdkDir()).split(sep).join('/');
  if (!sdk.startsWith('.')) sdk = './' + sdk;
  return JSON.stringify({
    compilerOptions: {
      target: 'ES5',
      lib: ['ES5', 'ES2015.Promise', 'ES2015.Collection', 'ES2015.Symbol'],
      module: 'ESNext',
      moduleResolution: 'Bundler',
      strict: true,
      types: [],
      noEmit: true,
      isolatedModules: true,
      paths: { 'signet/*': [sdk + '/*/index.ts'] },
    },
    include: ['src'],
  }, null, 2) + '\n';
}

function isEmptyDir(dir: string): boolean {
  return statSync(dir).isDirectory() && readdirSync(dir).length === 0;
}

/** Create a project in `dir`, which must not exist or be empty (E_EXISTS otherwise). */
export async function scaffoldProject(dir: string, opts: ScaffoldOptions): Promise<ProjectConfig> {
  const target = resolve(dir);
  const config = validateProjectConfig({ name: opts.name, board: opts.board, entry: 'src/main.ts', assets: [] });
  if (existsSync(target) && !isEmptyDir(target)) {
    throw new BuildError('E_EXISTS', target + ' exists and is not empty');
  }
  try {
    await createDirAtomic(target, (tmp) => {
      chmodSync(tmp, 0o777 & ~process.umask()); // a project folder, not a key folder
      mkdirSync(join(tmp, 'src'));
      writeFileSync(join(tmp, PROJECT_FILE), JSON.stringify(config, null, 2) + '\n');
      writeFileSync(join(tmp, 'src', 'main.ts'), mainSource(config.name));
      writeFileSync(join(tmp, 'tsconfig.json'), editorTsconfig(target));
    });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Someone filled the folder between the check and the rename.
    if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR') {
      throw new BuildError('E_EXISTS', target + ' exists and is not empty', {}, e);
    }
    throw e;
  }
  return config;
}
