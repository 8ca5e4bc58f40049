/**
 * Lowering one module to ES5 with TypeScript's transpiler. esbuild cannot lower to ES5 itself
 * (classes, let/const, destructuring...), so every .ts/.js file is passed through
 * `ts.transpileModule` before esbuild sees it; module syntax stays ESNext so esbuild can still
 * link and tree-shake. The per-file source map is kept to turn a line in lowered code back into
 * the line the vendor wrote.
 */
import { createHash } from 'node:crypto';
import * as acorn from 'acorn';
import type TS from 'typescript';
import { ts } from './typescript';
import { SourceMap } from './sourcemap';

export interface LoweredModule {
  code: string;
  /** Maps the lowered code back to the original file. */
  map: SourceMap;
  /** Syntax errors TypeScript found while parsing, as `line:col: message` (1-based). */
  errors: { line: number; column: number; message: string }[];
}

function lowerOptions(): TS.CompilerOptions {
  return {
  target: ts.ScriptTarget.ES5,
  module: ts.ModuleKind.ESNext,
  sourceMap: true,
  // Helpers (__extends, __assign...) are emitted per module, so their bytes count towards the
  // module that needs them in the TCB.
  importHelpers: false,
  downlevelIteration: false,
  esModuleInterop: true,
  allowJs: true,
  isolatedModules: true,
  useDefineForClassFields: false,
  removeComments: false,
  };
}

const IDENTITY = new SourceMap({ sources: [], mappings: '' });
const HELPER_THIS_PROBE = /^var (__\w+) = \(this && this\.\1\) \|\| /gm;

/** Already ES5 (most published CommonJS, e.g. tweetnacl): nothing to lower. */
function isEs5Script(source: string): boolean {
  try {
    acorn.parse(source, { ecmaVersion: 5, sourceType: 'script', allowHashBang: true });
    return true;
  } catch {
    return false;
  }
}

// Lowering costs 30-200 ms a file; tests and the CLI rebuild the same files many times in one
// process (the boot stage per board and config), so results are kept by file and content.
const cache = new Map<string, LoweredModule>();
const CACHE_MAX = 2000;

export function lowerToEs5(source: string, fileName: string): LoweredModule {
  const key = fileName + '\0' + createHash('sha256').update(source).digest('hex');
  const hit = cache.get(key);
  if (hit) return hit;
  const out = lowerUncached(source, fileName);
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(key, out);
  return out;
}

function lowerUncached(source: string, fileName: string): LoweredModule {
  // TypeScript takes ~1.5 s on an 80 kB library that needs no lowering; an ES5 parse takes ~50 ms.
  if (/\.(js|cjs)$/.test(fileName) && isEs5Script(source)) return { code: source, map: IDENTITY, errors: [] };
  const out = ts.transpileModule(source, { compilerOptions: lowerOptions(), fileName, reportDiagnostics: true });
  const code = out.outputText
    .replace(/\/\/# sourceMappingURL=\S*\s*$/, '')
    // TypeScript's helpers start `var __assign = (this && this.__assign) || ...` to reuse a
    // helper a CommonJS wrapper put on `this`. In a module `this` is undefined, but esbuild
    // takes a top-level `this` in a file without exports as CommonJS `exports` and wraps the
    // whole module (and its imports) in __commonJS/__esm. Dropping the probe keeps it ESM.
    .replace(HELPER_THIS_PROBE, 'var $1 = ');
  const errors: LoweredModule['errors'] = [];
  for (const d of out.diagnostics || []) {
    if (d.category !== ts.DiagnosticCategory.Error) continue;
    const pos = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : { line: 0, character: 0 };
    errors.push({ line: pos.line + 1, column: pos.character + 1, message: ts.flattenDiagnosticMessageText(d.messageText, ' ') });
  }
  return { code, map: new SourceMap(out.sourceMapText || '{"sources":[],"mappings":""}'), errors };
}
