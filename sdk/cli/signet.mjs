#!/usr/bin/env node
// The `signet` command. Runs the bundled CLI, rebuilding it first when any TypeScript
// source is newer than the bundle (a fresh clone, or a developer's edit).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bundle = join(root, 'dist', 'signet.mjs');

function newestSource(dir, newest = 0) {
  if (!existsSync(dir)) return newest;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = newestSource(p, newest);
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

const built = existsSync(bundle) ? statSync(bundle).mtimeMs : 0;
const sources = ['sdk', 'bootloader', 'update-server'].reduce((n, d) => newestSource(join(root, d), n), 0);
if (built < sources) {
  const { bundleCli } = await import('./bundle.mjs');
  await bundleCli();
}
await import(pathToFileURL(bundle).href);
