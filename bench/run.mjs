// `npm run bench -- NAME`: bundle bench/NAME.ts with esbuild, run its exported run(), and
// print each figure on its own line as `figure NAME.key = VALUE UNIT`.
import { build } from 'esbuild';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const names = readdirSync(here).filter((f) => f.endsWith('.ts') && !f.startsWith('_')).map((f) => f.slice(0, -3)).sort();
const name = process.argv[2];
if (!name || !names.includes(name)) {
  console.error(`error[E_USAGE]: ${name ? `unknown benchmark "${name}"` : 'no benchmark named'} — one of: ${names.join(', ')}`);
  process.exit(2);
}
const outfile = join(here, 'out', `${name}.mjs`);
await build({
  entryPoints: [join(here, `${name}.ts`)],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  logLevel: 'error',
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
});
if (!existsSync(outfile)) process.exit(1);
const mod = await import(pathToFileURL(outfile).href);
const figures = await mod.run();
for (const [key, f] of Object.entries(figures)) {
  const v = Number.isInteger(f.value) ? String(f.value) : f.value.toPrecision(4);
  console.log(`figure ${name}.${key} = ${v} ${f.unit}`);
}
