/** Where the SDK's own files live, whether running from sources, a bundle or node_modules. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

let cachedRoot: string | undefined;

/** The folder holding Signet's package.json (sdk/, boards/, bootloader/ are beside it). */
export function sdkRoot(): string {
  if (cachedRoot) return cachedRoot;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if (JSON.parse(readFileSync(pj, 'utf8')).name === 'signet') return (cachedRoot = dir);
      } catch {
        // keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the Signet package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** The project cache (downloads, native builds): SIGNET_CACHE or <root>/.cache/signet. */
export function cacheDir(): string {
  return process.env.SIGNET_CACHE ? resolve(process.env.SIGNET_CACHE) : join(sdkRoot(), '.cache', 'signet');
}

export function sdkVersion(): string {
  return JSON.parse(readFileSync(join(sdkRoot(), 'package.json'), 'utf8')).version;
}
