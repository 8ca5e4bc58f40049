/**
 * TypeScript, loaded with require(): an ESM `import` of the 9 MB CommonJS file makes Node scan
 * it for named exports first, which costs about half a second per CLI run.
 */
import { createRequire } from 'node:module';

type TS = typeof import('typescript');
let loaded: TS | undefined;

export function typescript(): TS {
  if (!loaded) loaded = createRequire(import.meta.url)('typescript') as TS;
  return loaded;
}
