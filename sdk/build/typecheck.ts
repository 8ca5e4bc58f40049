/**
 * The type check run before bundling: the entry and everything it imports, strict, against
 * the types the device engine really has (ES5 lib + the Duktape extras in engine.ts). ES2015
 * Promise/collections/Symbol are declared on purpose, so that using them is reported as the
 * precise E_ENGINE_FEATURE by the bundle check instead of a vague "cannot find name".
 */
import type TS from 'typescript';
import { ts } from './typescript';
import { join, resolve } from 'node:path';
import { BuildError } from './errors';
import { DUKTAPE_LIB_DTS, RUNTIME_GLOBALS_DTS, type EngineProfile } from './engine';
import { nameModule } from './modules';

const ENGINE_DTS = '/__signet__/engine-duktape-es5.d.ts';
const RUNTIME_DTS = '/__signet__/runtime-globals.d.ts';
const LIBS = ['lib.es5.d.ts', 'lib.es2015.promise.d.ts', 'lib.es2015.collection.d.ts', 'lib.es2015.symbol.d.ts'];
const MAX_LISTED = 20;

function compilerOptions(sdk: string): TS.CompilerOptions {
  return {
    strict: true,
    target: ts.ScriptTarget.ES5,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: LIBS,
    types: [],
    noEmit: true,
    skipLibCheck: true,
    isolatedModules: true,
    esModuleInterop: true,
    resolveJsonModule: true,
    forceConsistentCasingInFileNames: true,
    paths: { 'signet/*': [join(sdk, '*', 'index.ts')] },
  };
}

// Parsing the lib files is most of the cost of a check; they never change within a process.
const libCache = new Map<string, TS.SourceFile>();
let engineDts: TS.SourceFile | undefined;
let runtimeDts: TS.SourceFile | undefined;

function makeHost(options: TS.CompilerOptions): TS.CompilerHost {
  const host = ts.createCompilerHost(options, true);
  const libDir = resolve(host.getDefaultLibLocation ? host.getDefaultLibLocation() : '');
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    if (fileName === ENGINE_DTS) {
      engineDts ??= ts.createSourceFile(ENGINE_DTS, DUKTAPE_LIB_DTS, ts.ScriptTarget.ES5, true);
      return engineDts;
    }
    if (fileName === RUNTIME_DTS) {
      runtimeDts ??= ts.createSourceFile(RUNTIME_DTS, RUNTIME_GLOBALS_DTS, ts.ScriptTarget.ES5, true);
      return runtimeDts;
    }
    const isLib = resolve(fileName).startsWith(libDir);
    if (isLib && libCache.has(fileName)) return libCache.get(fileName);
    const sf = getSourceFile(fileName, languageVersion, onError, shouldCreate);
    if (isLib && sf) libCache.set(fileName, sf);
    return sf;
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (f) => f === ENGINE_DTS || f === RUNTIME_DTS || fileExists(f);
  return host;
}

function where(file: TS.SourceFile | undefined, start: number | undefined, projectDir: string, sdk: string): { file?: string; line?: number; column?: number; prefix: string } {
  if (!file || start === undefined) return { prefix: '' };
  const pos = file.getLineAndCharacterOfPosition(start);
  const name = file.fileName === ENGINE_DTS ? 'signet/engine.d.ts' : file.fileName === RUNTIME_DTS ? 'signet/runtime-globals.d.ts' : nameModule(file.fileName, projectDir, sdk).name;
  return { file: name, line: pos.line + 1, column: pos.character + 1, prefix: name + ':' + (pos.line + 1) + ':' + (pos.character + 1) + ': ' };
}

/** Members the engine lacks, found with types: `bytes.slice(...)` on a Uint8Array. */
function missingMemberUses(program: TS.Program, profile: EngineProfile): { file: TS.SourceFile; node: TS.Node; what: string }[] {
  const checker = program.getTypeChecker();
  const found: { file: TS.SourceFile; node: TS.Node; what: string }[] = [];
  for (const sf of program.getSourceFiles()) {
    if (sf.isDeclarationFile || program.isSourceFileDefaultLibrary(sf)) continue;
    const visit = (node: TS.Node): void => {
      if (ts.isPropertyAccessExpression(node)) {
        const member = node.name.text;
        const sym = checker.getSymbolAtLocation(node.name);
        for (const decl of sym?.declarations ?? []) {
          const owner = decl.parent;
          if (!ts.isInterfaceDeclaration(owner) || !program.isSourceFileDefaultLibrary(decl.getSourceFile())) continue;
          const iface = owner.name.text;
          const missing = profile.missingLibMembers[iface];
          if (missing && missing.indexOf(member) >= 0) {
            const what = iface.endsWith('Constructor') ? iface.slice(0, -'Constructor'.length) + '.' + member : iface + '.prototype.' + member;
            found.push({ file: sf, node: node.name, what });
            break;
          }
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return found;
}

export interface TypecheckOptions {
  projectDir: string;
  /** Absolute path of the entry file. */
  entry: string;
  sdk: string;
  /** Also refuse lib members the engine lacks (null for engine `node`). */
  profile: EngineProfile | null;
}

/** Throws BuildError E_BUILD_TYPE / E_BUILD_RESOLVE / E_ENGINE_FEATURE; returns on success. */
export function typecheckService(opts: TypecheckOptions): void {
  const options = compilerOptions(opts.sdk);
  // The node engine has these globals itself; duktape-es5 gets the runtime's (bundle.ts injects them).
  const program = ts.createProgram({ rootNames: [opts.entry, ENGINE_DTS, RUNTIME_DTS], options, host: makeHost(options) });
  const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (diagnostics.length > 0) {
    const lines = diagnostics.slice(0, MAX_LISTED).map((d) => where(d.file, d.start, opts.projectDir, opts.sdk).prefix + ts.flattenDiagnosticMessageText(d.messageText, ' '));
    const first = diagnostics[0];
    const at = where(first.file, first.start, opts.projectDir, opts.sdk);
    // 2307: cannot find module; 2792: cannot find module (resolution hint). Same fault as esbuild's.
    const code = first.code === 2307 || first.code === 2792 ? 'E_BUILD_RESOLVE' : 'E_BUILD_TYPE';
    const more = diagnostics.length > 1 ? ' (and ' + (diagnostics.length - 1) + ' more)' : '';
    throw new BuildError(code, lines[0] + more, { file: at.file, line: at.line, column: at.column, diagnostics: lines });
  }
  if (!opts.profile) return;
  const uses = missingMemberUses(program, opts.profile);
  if (uses.length > 0) {
    const lines = uses.slice(0, MAX_LISTED).map((u) => where(u.file, u.node.getStart(u.file), opts.projectDir, opts.sdk).prefix + u.what + ' is not available on ' + opts.profile!.id + ' (module ' + where(u.file, u.node.getStart(u.file), opts.projectDir, opts.sdk).file + ')');
    const at = where(uses[0].file, uses[0].node.getStart(uses[0].file), opts.projectDir, opts.sdk);
    throw new BuildError('E_ENGINE_FEATURE', lines[0], { file: at.file, line: at.line, column: at.column, module: at.file, feature: uses[0].what, diagnostics: lines });
  }
}
