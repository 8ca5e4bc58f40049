/**
 * TypeScript, loaded with require() on first use: an ESM `import` of the 9 MB CommonJS file
 * makes Node scan it for named exports first (about half a second), and loading it at all
 * costs ~0.4 s that commands other than `build` must not pay. `ts` is a lazy view of the
 * module: the first property read loads it.
 */
import { createRequire } from 'node:module';

type TS = typeof import('typescript');
let loaded: TS | undefined;

export function typescript(): TS {
  if (!loaded) loaded = createRequire(import.meta.url)('typescript') as TS;
  return loaded;
}

export const ts: TS = new Proxy({} as TS, {
  get(_target, prop) {
    return (typescript() as unknown as Record<string | symbol, unknown>)[prop];
  },
});
