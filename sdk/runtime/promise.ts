/**
 * A small Promise (ES2015 semantics: then/catch/finally, resolve, reject, all, race, allSettled)
 * for engines without one (Duktape). The build injects it for every free `Promise` in a
 * duktape-es5 bundle (sdk/build/bundle.ts), which is what TypeScript's ES5 lowering of
 * async/await calls, so async code runs on the device. Reactions run from the runtime's job
 * queue (jobs.ts). A rejection nobody handles by the time the queue is empty is thrown from the
 * event loop, which the host reports with the error's file and line.
 */
import { queueJob, whenDrained } from './jobs';

type Settle<T> = (value: T | PromiseLike<T>) => void;
type Reject = (reason?: unknown) => void;

const PENDING = 0;
const FULFILLED = 1;
const REJECTED = 2;

interface Reaction {
  onFulfilled: ((v: unknown) => unknown) | undefined;
  onRejected: ((r: unknown) => unknown) | undefined;
  resolve: Settle<unknown>;
  reject: Reject;
}

function isThenable(x: unknown): x is { then: unknown } {
  return (typeof x === 'object' && x !== null) || typeof x === 'function';
}

export class SignetPromise<T> {
  private state = PENDING;
  private value: unknown = undefined;
  private reactions: Reaction[] = [];
  private handled = false;

  constructor(executor: (resolve: Settle<T>, reject: Reject) => void) {
    if (typeof executor !== 'function') throw new TypeError('Promise resolver is not a function');
    const fns = this.resolvingFunctions();
    try {
      executor(fns.resolve as Settle<T>, fns.reject);
    } catch (e) {
      fns.reject(e);
    }
  }

  private resolvingFunctions(): { resolve: Settle<unknown>; reject: Reject } {
    let done = false;
    const self = this;
    return {
      resolve: function (v) {
        if (done) return;
        done = true;
        self.resolveWith(v);
      },
      reject: function (r) {
        if (done) return;
        done = true;
        self.settle(REJECTED, r);
      },
    };
  }

  private resolveWith(v: unknown): void {
    if (v === this) {
      this.settle(REJECTED, new TypeError('a promise cannot be resolved with itself'));
      return;
    }
    if (isThenable(v)) {
      let then: unknown;
      try {
        then = v.then;
      } catch (e) {
        this.settle(REJECTED, e);
        return;
      }
      if (typeof then === 'function') {
        const fns = this.resolvingFunctions();
        queueJob(function () {
          try {
            (then as (a: Settle<unknown>, b: Reject) => void).call(v, fns.resolve, fns.reject);
          } catch (e) {
            fns.reject(e);
          }
        });
        return;
      }
    }
    this.settle(FULFILLED, v);
  }

  private settle(state: number, value: unknown): void {
    if (this.state !== PENDING) return;
    this.state = state;
    this.value = value;
    const reactions = this.reactions;
    this.reactions = [];
    for (let i = 0; i < reactions.length; i++) this.schedule(reactions[i]);
    if (state === REJECTED && !this.handled) {
      const self = this;
      whenDrained(function () {
        if (!self.handled) {
          self.handled = true; // reported once
          throw self.value instanceof Error ? self.value : new Error('unhandled promise rejection: ' + String(self.value));
        }
      });
    }
  }

  private schedule(r: Reaction): void {
    const state = this.state;
    const value = this.value;
    queueJob(function () {
      const f = state === FULFILLED ? r.onFulfilled : r.onRejected;
      if (typeof f !== 'function') {
        if (state === FULFILLED) r.resolve(value);
        else r.reject(value);
        return;
      }
      let out: unknown;
      try {
        out = f(value);
      } catch (e) {
        r.reject(e);
        return;
      }
      r.resolve(out);
    });
  }

  then<A = T, B = never>(
    onFulfilled?: ((value: T) => A | PromiseLike<A>) | null,
    onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): SignetPromise<A | B> {
    const self = this;
    this.handled = true;
    return new SignetPromise<A | B>(function (resolve, reject) {
      const r: Reaction = {
        onFulfilled: typeof onFulfilled === 'function' ? (onFulfilled as (v: unknown) => unknown) : undefined,
        onRejected: typeof onRejected === 'function' ? onRejected : undefined,
        resolve: resolve as Settle<unknown>,
        reject,
      };
      if (self.state === PENDING) self.reactions.push(r);
      else self.schedule(r);
    });
  }

  catch<B = never>(onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null): SignetPromise<T | B> {
    return this.then(undefined, onRejected);
  }

  finally(onFinally?: (() => void) | null): SignetPromise<T> {
    if (typeof onFinally !== 'function') return this.then();
    return this.then(
      function (v) {
        return SignetPromise.resolve(onFinally()).then(function () { return v; });
      },
      function (r) {
        return SignetPromise.resolve(onFinally()).then(function (): T { throw r; });
      },
    );
  }

  static resolve<U>(value?: U | PromiseLike<U>): SignetPromise<U> {
    if (value instanceof SignetPromise) return value as SignetPromise<U>;
    return new SignetPromise<U>(function (resolve) { resolve(value as U); });
  }

  static reject<U = never>(reason?: unknown): SignetPromise<U> {
    return new SignetPromise<U>(function (_resolve, reject) { reject(reason); });
  }

  static all<U>(values: ArrayLike<U | PromiseLike<U>>): SignetPromise<U[]> {
    return new SignetPromise<U[]>(function (resolve, reject) {
      const out: U[] = [];
      let left = values.length;
      if (left === 0) resolve(out);
      for (let i = 0; i < values.length; i++) {
        (function (i: number) {
          SignetPromise.resolve(values[i]).then(function (v) {
            out[i] = v as U;
            if (--left === 0) resolve(out);
          }, reject);
        })(i);
      }
    });
  }

  static allSettled<U>(values: ArrayLike<U | PromiseLike<U>>): SignetPromise<Array<{ status: string; value?: U; reason?: unknown }>> {
    return new SignetPromise<Array<{ status: string; value?: U; reason?: unknown }>>(function (resolve) {
      const out: Array<{ status: string; value?: U; reason?: unknown }> = [];
      let left = values.length;
      if (left === 0) resolve(out);
      for (let i = 0; i < values.length; i++) {
        (function (i: number) {
          SignetPromise.resolve(values[i]).then(
            function (v) {
              out[i] = { status: 'fulfilled', value: v as U };
              if (--left === 0) resolve(out);
            },
            function (r) {
              out[i] = { status: 'rejected', reason: r };
              if (--left === 0) resolve(out);
            },
          );
        })(i);
      }
    });
  }

  static race<U>(values: ArrayLike<U | PromiseLike<U>>): SignetPromise<U> {
    return new SignetPromise<U>(function (resolve, reject) {
      for (let i = 0; i < values.length; i++) SignetPromise.resolve(values[i]).then(resolve as (v: unknown) => void, reject);
    });
  }
}
