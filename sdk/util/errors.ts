/**
 * The base of every error Signet reports to a person.
 *
 * Each area (image, keys, boards, build, ...) has its own error module with a closed union of
 * codes; all of them extend SignetError so the CLI can print one line
 * `error[CODE]: message — hint` for any of them without a stack trace.
 *
 * Written to lower cleanly to ES5 (the boot stage runs on Duktape): no `new.target` tricks
 * beyond what TypeScript lowers, and the prototype is restored explicitly because ES5
 * `Error.call(this)` returns a fresh object.
 */
export class SignetError extends Error {
  readonly code: string;
  readonly hint: string;
  override readonly cause: unknown;

  constructor(code: string, message: string, hint?: string, cause?: unknown) {
    super(message);
    const proto = (this.constructor as { prototype: object }).prototype;
    if (Object.setPrototypeOf) Object.setPrototypeOf(this, proto);
    this.code = code;
    this.hint = hint || '';
    this.cause = cause;
    this.name = (this.constructor as { name?: string }).name || 'SignetError';
    this.message = message;
  }

  /** The one line a person sees: `error[CODE]: what was wrong — what to do`. */
  line(): string {
    return 'error[' + this.code + ']: ' + this.message + (this.hint ? ' — ' + this.hint : '');
  }
}

/**
 * The base of the area error classes: a SignetError whose `code` is the area's closed union.
 * A subclass passes its own class name and the hint for the code; it declares only what it adds
 * (extra fields, getters), never `code` again.
 *
 * The name is passed as a string, not read from the constructor: bundling renames classes
 * (collisions, minify) and ES5 `Error.call(this)` loses the constructor. `new.target` lowers
 * to the instance's original `this.constructor`, so the prototype restored here is the
 * subclass's even on ES5, and `instanceof` holds for the subclass, CodedError and SignetError.
 */
export class CodedError<C extends string> extends SignetError {
  override readonly code: C;

  constructor(name: string, code: C, message: string, hint?: string, cause?: unknown) {
    super(code, message, hint, cause);
    if (Object.setPrototypeOf) Object.setPrototypeOf(this, new.target.prototype);
    this.code = code;
    this.name = name;
  }
}

/**
 * The base for an area whose hint is fixed per code by a table and whose constructor is
 * `(code, message, cause?)`: `export class ImageError extends hintedError<ImageErrorCode>('ImageError', HINTS) {}`.
 */
export function hintedError<C extends string>(name: string, hints: Readonly<Record<C, string>>) {
  return class extends CodedError<C> {
    constructor(code: C, message: string, cause?: unknown) {
      super(name, code, message, hints[code], cause);
    }
  };
}

/**
 * The base for a layer whose messages already read "what was wrong — what to do" (no hint) and
 * whose constructor is `(code, message, options?: { cause })`:
 * `export class FdtError extends unhintedError<FdtErrorCode>('FdtError') {}`.
 */
export function unhintedError<C extends string>(name: string) {
  return class extends CodedError<C> {
    constructor(code: C, message: string, options?: { cause?: unknown }) {
      super(name, code, message, '', options?.cause);
    }
  };
}

export function isSignetError(e: unknown): e is SignetError {
  return typeof e === 'object' && e !== null && typeof (e as SignetError).code === 'string' &&
    typeof (e as SignetError).line === 'function';
}
