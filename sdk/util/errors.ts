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

export function isSignetError(e: unknown): e is SignetError {
  return typeof e === 'object' && e !== null && typeof (e as SignetError).code === 'string' &&
    typeof (e as SignetError).line === 'function';
}
