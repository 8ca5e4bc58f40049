// Bundles the CLI (TypeScript) into dist/signet.mjs with esbuild. Run by `npm ci` (prepare),
// by the test setup, and by the launcher when sources are newer than the bundle.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export async function bundleCli() {
  await build({
    entryPoints: [join(root, 'sdk/cli/entry.ts')],
    outdir: join(root, 'dist'),
    entryNames: 'signet',
    chunkNames: 'chunks/[name]-[hash]',
    outExtension: { '.js': '.mjs' },
    splitting: true, // heavy dependencies (TypeScript, esbuild, node-forge) load only for the commands that use them
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: 'linked',
    logLevel: 'error',
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await bundleCli();
}
