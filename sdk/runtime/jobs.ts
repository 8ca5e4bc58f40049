/**
 * The job (microtask) queue for Promise reactions. Duktape has none, so the runtime keeps one:
 * every event-loop handler the runtime installs drains it when it returns (guard), and a job
 * queued outside any handler (the app's top level) is drained by a 0 ms timer.
 */
import { globalObject, loop } from './host';

const queue: Array<() => void> = [];
let draining = false;
let scheduled = false;
const afterDrain: Array<() => void> = [];

function scheduleDrain(): void {
  if (scheduled || draining) return;
  scheduled = true;
  const b = loop();
  if (b) {
    b.timerStart(guard(function () { scheduled = false; }), 0, 0);
    return;
  }
  const st = globalObject().setTimeout as ((f: () => void, ms: number) => unknown) | undefined;
  if (typeof st === 'function') st(function () { scheduled = false; drain(); }, 0);
  else {
    scheduled = false;
    drain(); // no loop at all: run the jobs now
  }
}

export function queueJob(job: () => void): void {
  queue.push(job);
  scheduleDrain();
}

/** Runs once the queue is empty next (unhandled-rejection checks). */
export function whenDrained(check: () => void): void {
  afterDrain.push(check);
  scheduleDrain();
}

/** Runs queued jobs (and the jobs they queue) until none is left. */
export function drain(): void {
  if (draining) return;
  draining = true;
  try {
    for (;;) {
      while (queue.length > 0) queue.shift()!();
      if (afterDrain.length === 0) break;
      const checks = afterDrain.splice(0, afterDrain.length);
      for (let i = 0; i < checks.length; i++) checks[i]();
    }
  } finally {
    draining = false;
    if (queue.length > 0 || afterDrain.length > 0) scheduleDrain(); // a job threw: the rest later
  }
}

/** Wraps an event handler so that the promise jobs it queued run before the loop goes on. */
export function guard<A extends unknown[]>(f: (...args: A) => void): (...args: A) => void {
  return function (this: unknown) {
    try {
      // eslint-disable-next-line prefer-rest-params
      f.apply(this, arguments as unknown as A);
    } finally {
      drain();
    }
  };
}
