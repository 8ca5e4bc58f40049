/**
 * Where the runtime's timers and sockets come from: the device's event loop (`__signet_host.uv`,
 * libuv in the C host), else under Node a shim over node:net and node:dgram (node-binding.ts),
 * else nothing (a bare JS context: timers fall back to the context's own, sockets fail with
 * E_NO_NETWORK).
 */
import type { UvBinding } from './binding';
import { nodeBinding } from './node-binding';

declare const __signet_host: { uv?: UvBinding; log?(line: string): void } | undefined;

let binding: UvBinding | null | undefined;

/** The JS global object, on every engine (Duktape has globalThis; older ones need the probe). */
export function globalObject(): Record<string, unknown> {
  // eslint-disable-next-line no-new-func
  return typeof globalThis !== 'undefined' ? (globalThis as unknown as Record<string, unknown>) : (Function('return this')() as Record<string, unknown>);
}

/** The event loop binding, or null where there is none. */
export function loop(): UvBinding | null {
  if (binding === undefined) {
    const host = typeof __signet_host !== 'undefined' ? __signet_host : undefined;
    binding = host && host.uv ? host.uv : nodeBinding();
  }
  return binding;
}

/** A runtime error with a stable code, as Node's have (`e.code === 'EADDRINUSE'`). */
export interface CodedError extends Error {
  code: string;
}

export function codedError(code: string, message: string): CodedError {
  const e = new Error(message) as CodedError;
  e.code = code;
  return e;
}

/** The binding, or a thrown E_NO_NETWORK for code that needs sockets. */
export function requireLoop(what: string): UvBinding {
  const b = loop();
  if (!b) throw codedError('E_NO_NETWORK', what + ': this host has no event loop (not a Signet device, not Node)');
  return b;
}
