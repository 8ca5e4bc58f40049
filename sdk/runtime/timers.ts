/**
 * setTimeout, setInterval, setImmediate and their clear* functions, Node-shaped (a Timeout
 * object with ref/unref). On a device they are libuv timers; timers due at the same time fire
 * in the order they were set. The build injects these for the bare globals in a duktape-es5
 * bundle, so `setTimeout(...)` works there as in Node.
 */
import { globalObject, loop } from './host';
import { drain, guard } from './jobs';

/** Node's limit: longer (or non-numeric, or < 1) delays become 1 ms. */
const TIMEOUT_MAX = 2147483647;

type HostTimer = { ref?(): unknown; unref?(): unknown };

export class Timeout {
  /** A libuv timer id on a device, else the host's own timer. */
  private id: number | undefined;
  private hostTimer: HostTimer | undefined;
  private refed = true;
  private repeat: boolean;

  constructor(callback: () => void, ms: number, repeat: boolean) {
    this.repeat = repeat;
    const delay = typeof ms === 'number' && ms >= 1 && ms <= TIMEOUT_MAX ? Math.floor(ms) : 1;
    const b = loop();
    if (b) {
      this.id = b.timerStart(guard(function (event: string) {
        if (event === 'timeout') callback();
      }), delay, repeat ? delay : 0);
      return;
    }
    const g = globalObject();
    const start = (repeat ? g.setInterval : g.setTimeout) as ((f: () => void, ms: number) => HostTimer) | undefined;
    if (typeof start !== 'function') throw new Error('timers: this host has neither an event loop nor timers');
    this.hostTimer = start(function () {
      try {
        callback();
      } finally {
        drain();
      }
    }, delay);
  }

  /** Keep the service running while this timer is pending (the default). */
  ref(): this {
    this.setRef(true);
    return this;
  }

  /** Let the service end even though this timer is pending. */
  unref(): this {
    this.setRef(false);
    return this;
  }

  hasRef(): boolean {
    return this.refed;
  }

  /** Cancels the timer (what clearTimeout/clearInterval do). */
  close(): this {
    const b = loop();
    if (this.id !== undefined && b) b.close(this.id);
    else if (this.hostTimer !== undefined) {
      const g = globalObject();
      const clear = (this.repeat ? g.clearInterval : g.clearTimeout) as ((t: unknown) => void) | undefined;
      if (typeof clear === 'function') clear(this.hostTimer);
    }
    this.id = undefined;
    this.hostTimer = undefined;
    return this;
  }

  private setRef(on: boolean): void {
    this.refed = on;
    const b = loop();
    if (this.id !== undefined && b) {
      try {
        b.ref(this.id, on);
      } catch {
        // a one-shot timer that already fired has closed itself
      }
    } else if (this.hostTimer !== undefined) {
      const f = on ? this.hostTimer.ref : this.hostTimer.unref;
      if (typeof f === 'function') f.call(this.hostTimer);
    }
  }
}

function bind(callback: (...args: unknown[]) => void, args: unknown[]): () => void {
  if (typeof callback !== 'function') throw new TypeError('the callback must be a function');
  return function () {
    callback.apply(undefined, args);
  };
}

export function setTimeout(callback: (...args: any[]) => void, ms?: number, ...args: unknown[]): Timeout {
  return new Timeout(bind(callback, args), ms as number, false);
}

export function setInterval(callback: (...args: any[]) => void, ms?: number, ...args: unknown[]): Timeout {
  return new Timeout(bind(callback, args), ms as number, true);
}

/** Runs the callback after the current event (as a 0 ms timer, after earlier timers due now). */
export function setImmediate(callback: (...args: any[]) => void, ...args: unknown[]): Timeout {
  return new Timeout(bind(callback, args), 0, false);
}

function clear(t: unknown): void {
  if (t instanceof Timeout) t.close();
}

export function clearTimeout(t: Timeout | undefined | null): void {
  clear(t);
}

export function clearInterval(t: Timeout | undefined | null): void {
  clear(t);
}

export function clearImmediate(t: Timeout | undefined | null): void {
  clear(t);
}
