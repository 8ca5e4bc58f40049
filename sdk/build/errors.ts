/**
 * The closed set of reasons a service does not build. The CLI prints `error[CODE]: message — hint`;
 * callers branch on `code`, never on the message.
 */
import { CodedError } from '../util/errors';

export type BuildErrorCode =
  | 'E_BUILD' // esbuild failed for a reason other than resolution
  | 'E_BUILD_RESOLVE' // an import names a file, package or SDK module that does not exist
  | 'E_BUILD_TYPE' // the TypeScript type check failed
  | 'E_ENGINE_SYNTAX' // the bundle holds syntax the device engine cannot parse
  | 'E_ENGINE_FEATURE' // the bundle uses a built-in the device engine lacks
  | 'E_EXISTS' // scaffold target folder is not empty
  | 'E_PROJECT_MISSING' // no signet.json in the project folder
  | 'E_PROJECT_JSON' // signet.json is not valid JSON
  | 'E_PROJECT_FIELD' // unknown, missing or ill-typed field in signet.json
  | 'E_PROJECT_ENTRY' // the entry (or an asset) named in signet.json is not there
  | 'E_TCB_INPUT'; // a dependency list that cannot be a TCB (duplicate name, bad size or kind)

const HINTS: Record<BuildErrorCode, string> = {
  E_BUILD: 'fix the source file named above and build again',
  E_BUILD_RESOLVE: 'check the import path; SDK modules are imported as signet/<module>',
  E_BUILD_TYPE: 'fix the type error and build again',
  E_ENGINE_SYNTAX: 'rewrite it in syntax TypeScript lowers to ES5, or drop the dependency that ships it',
  E_ENGINE_FEATURE: 'the device engine (Duktape 2.7) does not have it; use an ES5 alternative (callbacks for Promise, objects for Map/Set, subarray and loops for typed arrays)',
  E_EXISTS: 'choose a new or empty folder',
  E_PROJECT_MISSING: 'run `signet init` to create a project, or pass the project folder',
  E_PROJECT_JSON: 'fix the JSON syntax in signet.json',
  E_PROJECT_FIELD: 'signet.json takes exactly: name, board, entry, assets',
  E_PROJECT_ENTRY: 'create the file or fix the path in signet.json',
  E_TCB_INPUT: 'pass the dependencies list from a Signet build or image manifest',
};

export interface BuildErrorDetails {
  /** Where, relative to the project (SDK files as `signet/...`). */
  file?: string;
  line?: number;
  column?: number;
  /** The bundle module the problem is in (same naming as the TCB). */
  module?: string;
  /** For E_ENGINE_FEATURE: the missing built-in, e.g. `Promise` or `Uint8Array.prototype.slice`. */
  feature?: string;
  /** Further diagnostics after the first (E_BUILD_TYPE, E_BUILD), already formatted `file:line:col: message`. */
  diagnostics?: string[];
}

export class BuildError extends CodedError<BuildErrorCode> {
  readonly details: BuildErrorDetails;
  constructor(code: BuildErrorCode, message: string, details?: BuildErrorDetails, cause?: unknown) {
    super('BuildError', code, message, HINTS[code], cause);
    this.details = details || {};
  }
}
