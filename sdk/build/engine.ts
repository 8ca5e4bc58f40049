/**
 * What the device engine can run, and the checks that hold a bundle to it.
 *
 * The profile was measured on Duktape 2.7.0 as Debian builds it (duktape-dev, default config:
 * Symbol, Proxy, Reflect, globalThis, TextEncoder/TextDecoder and typed arrays present; no
 * Promise). tests/build-duktape.test.ts re-measures it on the real engine when libduktape is
 * installed, so this list cannot drift from the truth silently.
 */
import * as acorn from 'acorn';

export interface EngineProfile {
  id: 'duktape-es5';
  /** Globals the engine does not have. A reference guarded by `typeof X` is allowed. */
  missingGlobals: readonly string[];
  /** Static members the engine does not have, as `Global.member`. */
  missingStatics: readonly string[];
  /**
   * Members TypeScript's ES5 lib declares but the engine lacks, by lib interface name
   * (`Uint8Array` = prototype methods, `Uint8ArrayConstructor` = statics). Checked with types
   * during the type check, since `x.slice()` cannot be judged without knowing what `x` is.
   */
  missingLibMembers: Readonly<Record<string, readonly string[]>>;
}

const TYPED_ARRAYS = [
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array',
  'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array',
];

// Duktape 2.7 typed arrays implement only the Khronos-era surface (set, subarray).
const TYPED_ARRAY_MISSING = [
  'copyWithin', 'every', 'fill', 'filter', 'find', 'findIndex', 'forEach', 'indexOf', 'join',
  'lastIndexOf', 'map', 'reduce', 'reduceRight', 'reverse', 'slice', 'some', 'sort',
];

function typedArrayMembers(): Record<string, readonly string[]> {
  const out: Record<string, readonly string[]> = {};
  for (const t of TYPED_ARRAYS) {
    out[t] = TYPED_ARRAY_MISSING;
    out[t + 'Constructor'] = ['from', 'of'];
  }
  return out;
}

export const DUKTAPE_ES5: EngineProfile = {
  id: 'duktape-es5',
  missingGlobals: [
    'Promise', 'Map', 'Set', 'WeakMap', 'WeakSet', 'WeakRef', 'FinalizationRegistry',
    'BigInt', 'BigInt64Array', 'BigUint64Array', 'Intl', 'SharedArrayBuffer', 'Atomics',
    'AggregateError', 'Iterator',
  ],
  missingStatics: [
    'Symbol.asyncIterator',
    'Array.from', 'Array.of',
    'Object.entries', 'Object.values', 'Object.fromEntries', 'Object.getOwnPropertyDescriptors',
    'String.raw',
    'Math.fround', 'Math.log1p', 'Math.expm1', 'Math.sinh', 'Math.cosh', 'Math.tanh',
    'Math.asinh', 'Math.acosh', 'Math.atanh',
    ...TYPED_ARRAYS.flatMap((t) => [t + '.from', t + '.of']),
  ],
  missingLibMembers: typedArrayMembers(),
};

/** How an engine finding is reported: where in the bundle, resolved by the caller to a module. */
export interface BundleFinding {
  kind: 'syntax' | 'feature';
  /** Position in the bundle: line 1-based, column 0-based. */
  line: number;
  column: number;
  /** For syntax: the parser's message; for feature: the missing built-in. */
  what: string;
}

type Node = acorn.Node & Record<string, unknown>;

function isNode(v: unknown): v is Node {
  return typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string';
}

function children(node: Node): Node[] {
  const out: Node[] = [];
  for (const key of Object.keys(node)) {
    if (key === 'loc') continue;
    const v = node[key];
    if (Array.isArray(v)) {
      for (const c of v) if (isNode(c)) out.push(c);
    } else if (isNode(v)) out.push(v);
  }
  return out;
}

function isFunction(n: Node): boolean {
  return n.type === 'FunctionDeclaration' || n.type === 'FunctionExpression';
}

/** ES5 scoping: `var` and function declarations hoist to the function; catch params are local. */
function declaredIn(scope: Node): Set<string> {
  const names = new Set<string>();
  if (isFunction(scope)) {
    for (const p of scope.params as Node[]) names.add(p.name as string);
    if (scope.type === 'FunctionExpression' && scope.id) names.add((scope.id as Node).name as string);
    names.add('arguments');
  }
  const visit = (n: Node): void => {
    if (n.type === 'VariableDeclarator') names.add((n.id as Node).name as string);
    if (n.type === 'FunctionDeclaration') {
      names.add((n.id as Node).name as string);
      return; // its body is its own scope
    }
    if (n.type === 'FunctionExpression') return;
    for (const c of children(n)) visit(c);
  };
  const body = isFunction(scope) ? (scope.body as Node) : scope;
  for (const c of children(body)) visit(c);
  return names;
}

/** Names X for which `typeof X` (or `typeof X.y`) appears in an expression. */
function typeofNames(n: Node, out: Set<string>): Set<string> {
  if (n.type === 'UnaryExpression' && n.operator === 'typeof') {
    let arg = n.argument as Node;
    while (arg.type === 'MemberExpression') arg = arg.object as Node;
    if (arg.type === 'Identifier') out.add(arg.name as string);
  }
  if (!isFunction(n)) for (const c of children(n)) typeofNames(c, out);
  return out;
}

/**
 * Every use of a global the engine lacks. A use counts unless it is only a `typeof` probe or
 * sits behind one (`typeof Symbol === "function" && Symbol.asyncIterator`, the pattern of
 * TypeScript's own helpers), since such code runs on the engine as written.
 */
function findMissingFeatures(ast: Node, profile: EngineProfile): BundleFinding[] {
  const globals = new Set(profile.missingGlobals);
  const statics = new Set(profile.missingStatics);
  const findings: BundleFinding[] = [];

  const isLocal = (name: string, scopes: Set<string>[]): boolean => {
    for (let i = scopes.length - 1; i >= 0; i--) if (scopes[i].has(name)) return true;
    return false;
  };
  const guardedBy = (name: string, guards: Set<string>[]): boolean => {
    for (const g of guards) if (g.has(name)) return true;
    return false;
  };
  const report = (n: Node, what: string): void => {
    const loc = n.loc as acorn.SourceLocation;
    findings.push({ kind: 'feature', line: loc.start.line, column: loc.start.column, what });
  };

  const walk = (n: Node, scopes: Set<string>[], guards: Set<string>[]): void => {
    if (isFunction(n)) scopes = scopes.concat([declaredIn(n)]);
    if (n.type === 'CatchClause') scopes = scopes.concat([new Set([(n.param as Node).name as string])]);

    if (n.type === 'UnaryExpression' && n.operator === 'typeof') {
      const arg = n.argument as Node;
      if (arg.type === 'Identifier') return; // probing, not using
    }
    if (n.type === 'Identifier') {
      const name = n.name as string;
      if (globals.has(name) && !isLocal(name, scopes) && !guardedBy(name, guards)) report(n, name);
      return;
    }
    if (n.type === 'MemberExpression') {
      const obj = n.object as Node;
      const prop = n.property as Node;
      if (!n.computed && obj.type === 'Identifier' && prop.type === 'Identifier') {
        const what = (obj.name as string) + '.' + (prop.name as string);
        if (statics.has(what) && !isLocal(obj.name as string, scopes) && !guardedBy(obj.name as string, guards)) report(n, what);
      }
      walk(obj, scopes, guards);
      if (n.computed) walk(prop, scopes, guards);
      return;
    }
    if (n.type === 'Property') {
      if (n.computed) walk(n.key as Node, scopes, guards);
      walk(n.value as Node, scopes, guards);
      return;
    }
    if (n.type === 'LabeledStatement' || n.type === 'BreakStatement' || n.type === 'ContinueStatement') {
      if (n.body) walk(n.body as Node, scopes, guards);
      return;
    }
    if (n.type === 'LogicalExpression' && n.operator === '&&') {
      walk(n.left as Node, scopes, guards);
      walk(n.right as Node, scopes, guards.concat([typeofNames(n.left as Node, new Set())]));
      return;
    }
    if (n.type === 'ConditionalExpression' || n.type === 'IfStatement') {
      const g = guards.concat([typeofNames(n.test as Node, new Set())]);
      walk(n.test as Node, scopes, guards);
      walk(n.consequent as Node, scopes, g);
      if (n.alternate) walk(n.alternate as Node, scopes, g);
      return;
    }
    for (const c of children(n)) walk(c, scopes, guards);
  };

  walk(ast, [declaredIn(ast)], []);
  return findings;
}

/** `/pattern/flags` source text for a pattern given as a string (as `new RegExp` takes it). */
function regexLiteral(pattern: string, flags: string): string {
  let out = '';
  let escaped = false;
  for (const ch of pattern) {
    if (escaped) {
      out += ch === '\n' ? 'n' : ch;
      escaped = false;
    } else if (ch === '\\') {
      out += ch;
      escaped = true;
    } else if (ch === '/') out += '\\/';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\u2028') out += '\\u2028';
    else if (ch === '\u2029') out += '\\u2029';
    else out += ch;
  }
  return '/' + (out || '(?:)') + '/' + flags;
}

/**
 * esbuild, asked for ES5, turns a regex literal the target cannot parse (`/a.b/s`, named
 * groups, lookbehind) into `new RegExp("a.b", "s")`, which passes an ES5 parse and then throws
 * on the device. Such constant patterns are checked here as the literals they were.
 */
function findRegExpErrors(ast: Node, scopes: Set<string>): BundleFinding[] {
  const found: BundleFinding[] = [];
  const visit = (n: Node): void => {
    if ((n.type === 'NewExpression' || n.type === 'CallExpression') && (n.callee as Node).type === 'Identifier' &&
      (n.callee as Node).name === 'RegExp' && !scopes.has('RegExp')) {
      const args = n.arguments as Node[];
      const literal = (a: Node | undefined): a is Node => !!a && a.type === 'Literal' && typeof a.value === 'string';
      if (literal(args[0]) && (args.length === 1 || (args.length === 2 && literal(args[1])))) {
        const text = regexLiteral(args[0].value as string, args.length === 2 ? (args[1].value as string) : '');
        try {
          acorn.parse(text, { ecmaVersion: 5 });
        } catch (e) {
          const loc = n.loc as acorn.SourceLocation;
          const why = (e as Error).message.replace(/ \(\d+:\d+\)$/, '').replace(/^Invalid regular expression: \/.*\/\w*: /, '');
          found.push({ kind: 'syntax', line: loc.start.line, column: loc.start.column, what: 'regular expression ' + text + ' (' + why + ')' });
        }
      }
    }
    for (const c of children(n)) visit(c);
  };
  visit(ast);
  return found;
}

export interface EngineCheck {
  /** The first thing the engine cannot parse, if any (then `features` is empty). */
  syntax?: BundleFinding;
  features: BundleFinding[];
}

/** Hold a bundle to the engine: ES5 syntax (incl. constant RegExp patterns), then built-ins. */
export function checkBundle(code: string, profile: EngineProfile): EngineCheck {
  let ast: Node;
  try {
    ast = acorn.parse(code, { ecmaVersion: 5, sourceType: 'script', locations: true }) as unknown as Node;
  } catch (e) {
    const err = e as SyntaxError & { loc?: { line: number; column: number } };
    if (!err.loc) throw e;
    return { syntax: { kind: 'syntax', line: err.loc.line, column: err.loc.column, what: err.message.replace(/ \(\d+:\d+\)$/, '') }, features: [] };
  }
  const regex = findRegExpErrors(ast, declaredIn(ast));
  if (regex.length > 0) return { syntax: regex[0], features: [] };
  return { features: findMissingFeatures(ast, profile) };
}

/**
 * Declarations for what Duktape 2.7 has beyond ES5, added to the type check so code may use
 * them (TypeScript's ES5 lib does not declare them, and its ES2015 lib declares far more than
 * the engine has). Every member here is checked to exist on the real engine by the Duktape test.
 */
export const DUKTAPE_LIB_DTS = `
// Not a built-in: ES2022 sets it from \`new Error(msg, { cause })\`, which Duktape ignores. Code
// that assigns it itself (SignetError does) works on any engine.
interface Error {
  cause?: unknown;
}
interface ObjectConstructor {
  assign<T extends {}, U>(target: T, source: U): T & U;
  assign<T extends {}, U, V>(target: T, source1: U, source2: V): T & U & V;
  assign(target: object, ...sources: any[]): any;
  setPrototypeOf(o: any, proto: object | null): any;
  is(value1: any, value2: any): boolean;
}
interface String {
  startsWith(searchString: string, position?: number): boolean;
  endsWith(searchString: string, endPosition?: number): boolean;
  includes(searchString: string, position?: number): boolean;
  repeat(count: number): string;
  codePointAt(pos: number): number | undefined;
}
interface StringConstructor {
  fromCodePoint(...codePoints: number[]): string;
}
interface NumberConstructor {
  readonly EPSILON: number;
  readonly MAX_SAFE_INTEGER: number;
  readonly MIN_SAFE_INTEGER: number;
  isFinite(number: unknown): boolean;
  isInteger(number: unknown): boolean;
  isNaN(number: unknown): boolean;
  isSafeInteger(number: unknown): boolean;
  parseFloat(string: string): number;
  parseInt(string: string, radix?: number): number;
}
interface Math {
  trunc(x: number): number;
  sign(x: number): number;
  imul(x: number, y: number): number;
  clz32(x: number): number;
  log2(x: number): number;
  log10(x: number): number;
  hypot(...values: number[]): number;
  cbrt(x: number): number;
}
interface TextEncoder {
  encode(input?: string): Uint8Array;
}
declare var TextEncoder: { new (): TextEncoder };
interface TextDecoder {
  decode(input?: ArrayBuffer | ArrayBufferView): string;
}
declare var TextDecoder: { new (label?: string): TextDecoder };
`;

/**
 * Globals the runtime provides where the engine has none (sdk/runtime/globals.ts, injected by
 * the bundler for every free use): the timer functions and queueMicrotask. Promise is declared
 * by TypeScript's ES2015 promise lib, which the type check already loads; the members the
 * runtime's Promise has beyond ES2015 (finally, allSettled) are added here.
 */
export const RUNTIME_GLOBALS_DTS = `
interface SignetTimeout {
  ref(): this;
  unref(): this;
  hasRef(): boolean;
  close(): this;
}
declare function setTimeout(callback: (...args: any[]) => void, ms?: number, ...args: any[]): SignetTimeout;
declare function setInterval(callback: (...args: any[]) => void, ms?: number, ...args: any[]): SignetTimeout;
declare function setImmediate(callback: (...args: any[]) => void, ...args: any[]): SignetTimeout;
declare function clearTimeout(timer: SignetTimeout | undefined | null): void;
declare function clearInterval(timer: SignetTimeout | undefined | null): void;
declare function clearImmediate(timer: SignetTimeout | undefined | null): void;
declare function queueMicrotask(job: () => void): void;
interface Promise<T> {
  finally(onfinally?: (() => void) | null): Promise<T>;
}
interface PromiseConstructor {
  allSettled<T>(values: ArrayLike<T>): Promise<Array<{ status: 'fulfilled' | 'rejected'; value?: Awaited<T>; reason?: any }>>;
}
`;
