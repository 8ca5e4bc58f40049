/**
 * Bundling a service for its board's JS engine.
 *
 *   type check (tsc, strict, engine lib) → esbuild bundle, each file lowered to ES5 by
 *   TypeScript in an onLoad plugin → parse the bundle as ES5 → refuse built-ins the engine lacks
 *
 * Lowering happens before esbuild links, so esbuild's per-input `bytesInOutput` is the number
 * of lowered bytes each module contributes: that list is the image's TCB (`dependencies`).
 */
import * as esbuild from 'esbuild';
import { existsSync, readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { BuildError, type BuildErrorCode } from './errors';
import { checkBundle, DUKTAPE_ES5, type BundleFinding } from './engine';
import { lowerToEs5, type LoweredModule } from './lower';
import { nameModule, sdkDir, type ModuleKind } from './modules';
import { encodeLineTable, makeLineTable } from './linetable';
import { SourceMap } from './sourcemap';
import { typecheckService } from './typecheck';

export type { ModuleKind } from './modules';

export interface BundleModule {
  name: string;
  kind: ModuleKind;
  /** Bytes this module contributes to the final (lowered) bundle. */
  bytes: number;
}

export interface BundleResult {
  code: string;
  modules: BundleModule[];
  engine: string;
  /** The line table (JSON, sdk/build/linetable.ts): bundle line → the vendor's file and line. */
  lineTable: string;
}

export type Engine = 'duktape-es5' | 'node';

export interface BundleOptions {
  projectDir: string;
  /** Entry file, relative to projectDir (or absolute). */
  entry: string;
  engine: Engine;
  /** Run the TypeScript type check first (default true). */
  typecheck?: boolean;
  /** esbuild `define`: identifier → JS expression text. */
  define?: Record<string, string>;
  /** Minify the bundle (default false: readable on a serial console). */
  minify?: boolean;
}

/**
 * The bytes esbuild adds around modules (IIFE wrapper, "use strict", module comments, legal
 * comments). Listed as one SDK entry so the TCB adds up to the bundle's size exactly.
 */
export const BUNDLE_WRAPPER_NAME = 'signet/(bundle wrapper)';

const OUT_NAME = 'service.js';
const KINDS: readonly ModuleKind[] = ['app', 'sdk', 'third-party'];
const SKIP = { signetInner: true };
const ORIGINAL_POSITION = { signetOriginalPosition: true };

/**
 * A package that `require`s a Node built-in only under a guard (tweetnacl's `crypto` for
 * randomness) says so in its package.json: `"browser": { "crypto": false }`. esbuild honours
 * that field only for platform "browser", which would also pick browser builds that expect a
 * DOM; the device is neither, so that one rule is applied here: such an import is an empty module.
 */
const EMPTY_NAMESPACE = 'signet-empty';

function browserFieldDisables(importer: string, specifier: string): boolean {
  let dir = dirname(importer);
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        const browser = (JSON.parse(readFileSync(pkg, 'utf8')) as { browser?: unknown }).browser;
        return typeof browser === 'object' && browser !== null && (browser as Record<string, unknown>)[specifier] === false;
      } catch {
        return false;
      }
    }
    const up = dirname(dir);
    if (up === dir || basename(dir) === 'node_modules') return false;
    dir = up;
  }
}

interface ModuleRecord {
  abs: string;
  name: string;
  kind: ModuleKind;
}

interface BuildContext {
  projectDir: string;
  sdk: string;
  /** Every file esbuild loaded, by `kind:name` (its esbuild path in our namespaces). */
  files: Map<string, ModuleRecord>;
  /** Lowered modules by absolute path, for mapping lowered positions back to source lines. */
  lowered: Map<string, LoweredModule>;
}

function loaderFor(abs: string, lower: boolean): esbuild.Loader | undefined {
  if (/\.(ts|mts|cts)$/.test(abs)) return lower ? 'js' : 'ts';
  if (/\.(js|mjs|cjs)$/.test(abs)) return 'js';
  if (/\.json$/.test(abs)) return 'json';
  return undefined;
}

/**
 * Every file is given to esbuild under a stable name in a namespace named after its kind
 * (`app:src/main.ts`, `sdk:signet/runtime/index.ts`, `third-party:pkg/index.js`), so nothing in
 * the bundle (module comments, CommonJS wrapper keys) depends on where the project or the SDK
 * is checked out: the same sources give the same bytes, hence the same image digest.
 */
function signetPlugin(ctx: BuildContext, lower: boolean): esbuild.Plugin {
  const record = (abs: string): esbuild.OnResolveResult => {
    const named = nameModule(abs, ctx.projectDir, ctx.sdk);
    const key = named.kind + ':' + named.name;
    const known = ctx.files.get(key);
    if (known && known.abs !== abs) {
      return { errors: [{ text: 'two files share the module name "' + named.name + '": ' + known.abs + ' and ' + abs }] };
    }
    ctx.files.set(key, { abs, name: named.name, kind: named.kind });
    // The runtime's modules only define things, so one the app does not use is left out whole
    // (TypeScript's lowered classes look like calls with side effects to esbuild).
    if (named.kind === 'sdk' && named.name.startsWith('signet/runtime/')) return { path: named.name, namespace: named.kind, sideEffects: false };
    return { path: named.name, namespace: named.kind };
  };
  return {
    name: 'signet',
    setup(build) {
      // `signet/<module>` is this SDK's sdk/<module>/index.ts: the device gets exactly this code.
      build.onResolve({ filter: /^signet(\/|$)/ }, (args) => {
        if (args.pluginData === SKIP) return undefined;
        const sub = args.path.slice('signet/'.length);
        const file = join(ctx.sdk, sub, 'index.ts');
        if (!/^[a-z][a-z0-9-]*$/.test(sub) || !existsSync(file)) {
          return { errors: [{ text: 'Could not resolve "' + args.path + '" (there is no SDK module by that name)' }] };
        }
        return record(file);
      });
      build.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData === SKIP) return undefined;
        const importer = ctx.files.get(args.namespace + ':' + args.importer);
        const r = await build.resolve(args.path, {
          kind: args.kind,
          resolveDir: args.resolveDir || ctx.projectDir,
          importer: importer ? importer.abs : undefined,
          pluginData: SKIP,
        });
        if (r.errors.length > 0) {
          if (importer && browserFieldDisables(importer.abs, args.path)) {
            const key = EMPTY_NAMESPACE + ':' + args.path;
            ctx.files.set(key, { abs: '', name: '(empty)/' + args.path, kind: 'third-party' });
            return { path: args.path, namespace: EMPTY_NAMESPACE };
          }
          if (isBuiltin(args.path)) {
            return { errors: [{ text: 'Could not resolve "' + args.path + '" (a Node.js built-in module; the device runs no Node.js)' }] };
          }
          return { errors: r.errors };
        }
        if (r.external || r.namespace !== 'file') return { path: r.path, namespace: r.namespace, external: r.external };
        const out = record(r.path);
        if (out.sideEffects !== false) out.sideEffects = r.sideEffects;
        return out;
      });
      build.onLoad({ filter: /.*/, namespace: EMPTY_NAMESPACE }, () => ({ contents: '', loader: 'js' }));
      for (const kind of KINDS) {
        build.onLoad({ filter: /.*/, namespace: kind }, (args) => {
          const rec = ctx.files.get(kind + ':' + args.path);
          if (!rec) return { errors: [{ text: 'internal: unknown module ' + args.path }] };
          const loader = loaderFor(rec.abs, lower);
          if (!loader) return { errors: [{ text: 'cannot bundle ' + rec.name + ': only .ts, .js and .json files can be imported' }] };
          const source = readFileSync(rec.abs, 'utf8');
          if (!lower || loader === 'json') return { contents: source, loader, resolveDir: dirname(rec.abs) };
          const out = lowerToEs5(source, rec.abs);
          ctx.lowered.set(rec.abs, out);
          if (out.errors.length > 0) {
            const e = out.errors[0];
            return { errors: [{ text: e.message, detail: ORIGINAL_POSITION, location: { file: args.path, namespace: kind, line: e.line, column: e.column - 1 } }] };
          }
          return { contents: out.code, loader, resolveDir: dirname(rec.abs) };
        });
      }
    },
  };
}

interface Located {
  module?: string;
  file?: string;
  line?: number;
  column?: number;
}

/** `kind:name` as esbuild prints it (metafile keys, map sources, message locations). */
function recordFor(ctx: BuildContext, esbuildPath: string, namespace?: string): ModuleRecord | undefined {
  return (namespace ? ctx.files.get(namespace + ':' + esbuildPath) : undefined) ?? ctx.files.get(esbuildPath);
}

/** A position in a lowered file (line 1-based, col 0-based) → the line the vendor wrote. */
function originalPosition(ctx: BuildContext, rec: ModuleRecord, line: number, column: number, lowered: boolean): Located {
  const mod = ctx.lowered.get(rec.abs);
  if (!lowered || !mod || mod.map.sources.length === 0) return { module: rec.name, file: rec.name, line, column: column + 1 };
  const orig = mod.map.lookup(line, column);
  // No mapping: code TypeScript generated (a helper such as __awaiter) at the top of the file.
  if (!orig) return { module: rec.name, file: rec.name };
  return { module: rec.name, file: rec.name, line: orig.line, column: orig.column + 1 };
}

function fileLine(l: Located): string {
  if (!l.file) return '';
  return l.file + (l.line ? ':' + l.line + (l.column ? ':' + l.column : '') : '') + ': ';
}

function esbuildFailure(ctx: BuildContext, e: unknown, lowered: boolean): BuildError {
  const errors = (e as { errors?: esbuild.Message[] }).errors;
  if (!errors || errors.length === 0) return new BuildError('E_BUILD', 'esbuild failed: ' + String((e as Error).message || e), {}, e);
  const lines: string[] = [];
  let first: Located = {};
  let code: BuildErrorCode = 'E_BUILD';
  errors.forEach((m, i) => {
    let at: Located = {};
    if (m.location && m.location.file) {
      const rec = recordFor(ctx, m.location.file, m.location.namespace);
      // Positions inside lowered files are positions in the lowered text, except in the
      // TypeScript syntax errors our loader reports, which are already original positions.
      if (rec) at = originalPosition(ctx, rec, m.location.line, m.location.column, lowered && m.detail !== ORIGINAL_POSITION);
      else at = { file: m.location.file, line: m.location.line, column: m.location.column + 1 };
    }
    lines.push(fileLine(at) + m.text);
    if (i === 0) {
      first = at;
      if (/^Could not resolve/.test(m.text)) code = 'E_BUILD_RESOLVE';
      else if (/configured target environment/.test(m.text)) code = 'E_ENGINE_SYNTAX';
    }
  });
  const more = errors.length > 1 ? ' (and ' + (errors.length - 1) + ' more)' : '';
  return new BuildError(code, lines[0] + more, { ...first, diagnostics: lines }, e);
}

function locateInBundle(ctx: BuildContext, map: SourceMap, f: BundleFinding): Located {
  const pos = map.lookup(f.line, f.column);
  const rec = pos ? recordFor(ctx, pos.source) : undefined;
  if (!pos || !rec) return { module: BUNDLE_WRAPPER_NAME, file: BUNDLE_WRAPPER_NAME };
  return originalPosition(ctx, rec, pos.line, pos.column, true);
}

function checkEngine(ctx: BuildContext, code: string, map: SourceMap): void {
  const check = checkBundle(code, DUKTAPE_ES5);
  if (check.syntax) {
    const at = locateInBundle(ctx, map, check.syntax);
    throw new BuildError('E_ENGINE_SYNTAX', fileLine(at) + check.syntax.what + ' is not ES5 (module ' + at.module + ')', at);
  }
  if (check.features.length === 0) return;
  const lines = check.features.map((f) => {
    const at = locateInBundle(ctx, map, f);
    // No source line: the use is in code TypeScript generated, e.g. __awaiter for async/await.
    const note = at.line === undefined && at.module !== BUNDLE_WRAPPER_NAME ? ' (in code TypeScript generated for it, e.g. async/await)' : '';
    return { at, feature: f.what, text: fileLine(at) + f.what + ' is not available on duktape-es5 (module ' + at.module + ')' + note };
  });
  // Lead with a use the vendor can find in their own source.
  lines.sort((a, b) => (a.at.line === undefined ? 1 : 0) - (b.at.line === undefined ? 1 : 0));
  const more = lines.length > 1 ? ' (and ' + (lines.length - 1) + ' more)' : '';
  throw new BuildError('E_ENGINE_FEATURE', lines[0].text + more, { ...lines[0].at, feature: lines[0].feature, diagnostics: lines.map((l) => l.text) });
}

export async function bundleService(opts: BundleOptions): Promise<BundleResult> {
  if (opts.engine !== 'duktape-es5' && opts.engine !== 'node') {
    throw new BuildError('E_BUILD', 'unknown engine "' + String(opts.engine) + '" (expected duktape-es5 or node)');
  }
  const projectDir = resolve(opts.projectDir);
  const entry = resolve(projectDir, opts.entry);
  const ctx: BuildContext = { projectDir, sdk: sdkDir(), files: new Map(), lowered: new Map() };
  if (!existsSync(entry)) {
    const name = nameModule(entry, projectDir, ctx.sdk).name;
    throw new BuildError('E_BUILD_RESOLVE', 'entry ' + name + ' does not exist', { file: name });
  }
  const lower = opts.engine === 'duktape-es5';

  if (opts.typecheck !== false) {
    typecheckService({ projectDir, entry, sdk: ctx.sdk, profile: lower ? DUKTAPE_ES5 : null });
  }

  const outfile = join(projectDir, OUT_NAME);
  let result: esbuild.BuildResult<{ metafile: true; write: false }>;
  try {
    result = await esbuild.build({
      entryPoints: [entry],
      absWorkingDir: projectDir,
      outfile,
      bundle: true,
      write: false,
      metafile: true,
      sourcemap: 'external',
      format: 'iife',
      platform: 'neutral',
      mainFields: ['module', 'main'],
      target: lower ? 'es5' : 'es2022',
      minify: opts.minify === true,
      define: opts.define,
      // ES module semantics are strict, and the type check assumed them; keep them in the script.
      banner: { js: '"use strict";' },
      // What the engine lacks and the runtime provides (Promise, so async/await runs; the
      // timer functions): each free use becomes an import of sdk/runtime/globals.ts.
      inject: lower ? [join(ctx.sdk, 'runtime', 'globals.ts')] : undefined,
      logLevel: 'silent',
      plugins: [signetPlugin(ctx, lower)],
    });
  } catch (e) {
    throw esbuildFailure(ctx, e, lower);
  }

  const jsFile = result.outputFiles.find((f) => f.path === outfile);
  const mapFile = result.outputFiles.find((f) => f.path === outfile + '.map');
  if (!jsFile || !mapFile) throw new BuildError('E_BUILD', 'esbuild produced no output for ' + opts.entry);
  const code = jsFile.text;

  const output = result.metafile.outputs[OUT_NAME];
  const modules: BundleModule[] = [];
  let counted = 0;
  for (const [input, info] of Object.entries(output ? output.inputs : {})) {
    if (info.bytesInOutput === 0) continue; // type-only or fully tree-shaken: not in the image
    // An object or array `define` becomes a shared variable esbuild files under its own name.
    const define = /^<define:(.+)>$/.exec(input);
    const rec = define ? { abs: '', name: '(define)/' + define[1], kind: 'app' as const } : recordFor(ctx, input);
    if (!rec) throw new BuildError('E_BUILD', 'esbuild bundled ' + input + ', which did not come through the Signet resolver');
    modules.push({ name: rec.name, kind: rec.kind, bytes: info.bytesInOutput });
    counted += info.bytesInOutput;
  }
  const total = Buffer.byteLength(code, 'utf8');
  if (counted > total) throw new BuildError('E_BUILD', 'module sizes (' + counted + ') exceed the bundle size (' + total + '); esbuild metafile is inconsistent');
  if (total > counted) modules.push({ name: BUNDLE_WRAPPER_NAME, kind: 'sdk', bytes: total - counted });
  modules.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const map = new SourceMap(mapFile.text);
  if (lower) checkEngine(ctx, code, map);
  return { code, modules, engine: opts.engine, lineTable: encodeLineTable(lineTableFor(ctx, map, code, lower)) };
}

/** One original `file:line` per bundle line, through the bundle's map and each module's lowering map. */
function lineTableFor(ctx: BuildContext, map: SourceMap, code: string, lowered: boolean) {
  const lineCount = code.split('\n').length;
  const sources: string[] = [];
  const index = new Map<string, number>();
  const perLine: ({ source: number; line: number } | undefined)[] = [];
  for (let l = 1; l <= lineCount; l++) {
    const pos = map.firstOnLine(l);
    const rec = pos ? recordFor(ctx, pos.source) : undefined;
    const at = pos && rec ? originalPosition(ctx, rec, pos.line, pos.column, lowered) : undefined;
    if (!at || !at.file || at.line === undefined) {
      perLine.push(undefined);
      continue;
    }
    let s = index.get(at.file);
    if (s === undefined) {
      s = sources.length;
      sources.push(at.file);
      index.set(at.file, s);
    }
    perLine.push({ source: s, line: at.line });
  }
  return makeLineTable(sources, perLine);
}
