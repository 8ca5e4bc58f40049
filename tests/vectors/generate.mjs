// Regenerate the golden vectors: `node tests/vectors/generate.mjs`. Bundles vectors.ts with
// esbuild (as bench/run.mjs does), runs its generator and writes every file and expected.json
// here. The output is deterministic (fixed seeds, fixed times), so running it twice changes
// nothing; tests/vectors.test.ts fails if the committed files differ from what it makes.
import { build } from 'esbuild';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'signet-vectors-'));
try {
  const outfile = join(tmp, 'vectors.mjs');
  await build({
    entryPoints: [join(here, 'vectors.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'error',
    nodePaths: [join(here, '..', '..', 'node_modules')],
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  const { generateVectors, expectedJson } = await import(pathToFileURL(outfile).href);
  const { files, cases } = await generateVectors();
  for (const [name, bytes] of files) {
    mkdirSync(dirname(join(here, name)), { recursive: true });
    writeFileSync(join(here, name), bytes);
  }
  writeFileSync(join(here, 'expected.json'), expectedJson(cases));
  console.log(`wrote ${files.size} files and ${cases.length} cases to ${here}`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
