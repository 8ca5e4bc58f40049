/**
 * The API a service imports: `import { log, confirm, board, version } from 'signet/runtime'`,
 * and the Node-like modules as namespaces: `import { http, net, dgram, dns, timers } from
 * 'signet/runtime'` (docs/runtime.md lists the subset). Each is left out of a bundle that does
 * not use it.
 *
 * Part of every image's trusted code base, so it stays tiny and plain ES5. On a device the
 * Signet boot stage installs the global `__signet_host` before running the app; under plain
 * Node (tests, `signet run --engine node`) there is none and output goes to `console.log`.
 */

import * as dgram from './dgram';
import * as dns from './dns';
import * as http from './http';
import * as net from './net';
import * as timers from './timers';
import * as tls from './tls';
import * as config from './config';
import type { NetInfo, UvBinding } from './binding';

export { dgram, dns, http, net, timers, tls };
export type { NetInfo };
export { fetch, type FetchOptions, type FetchResponse } from './fetch';
export { config };
export { SignetPromise as Promise } from './promise';

export interface SignetHost {
  log(line: string): void;
  confirm(): void;
  board: string;
  version: string;
  exit?(code: number): void;
  /** The device's event loop (libuv in the C host). */
  uv?: UvBinding;
}

// Both are globals of the host, not of every engine: Duktape has no `console`.
declare const __signet_host: SignetHost | undefined;
declare const console: { log(line: string): void } | undefined;

const host: SignetHost | undefined = typeof __signet_host !== 'undefined' ? __signet_host : undefined;

function fallbackLog(line: string): void {
  if (typeof console !== 'undefined') console.log(line);
}

/** The board id this image runs on (`none` without a host). */
export const board: string = host ? host.board : 'none';

/** The version of the running image, from its manifest (`0.0.0` without a host). */
export const version: string = host ? host.version : '0.0.0';

/** Write one line to the device log (serial console). */
export function log(line: string): void {
  if (host) host.log(String(line));
  else fallbackLog(String(line));
}

/**
 * Declare this boot healthy. In a trial boot this makes the new slot permanent; call it once
 * the service is actually serving, not at the first line of main.
 */
export function confirm(): void {
  if (host) host.confirm();
  else fallbackLog('app[CONFIRM] (no host)');
}

/**
 * The device's network as /init brought it up: interface, address and prefix (null while DHCP
 * has no lease), gateway, DNS servers, and for DHCP the server and lease length. Null when the
 * device has no network, and under Node.
 */
export function networkInfo(): NetInfo | null {
  return host && host.uv && host.uv.netInfo ? host.uv.netInfo() : null;
}

/** Stop the service with an exit code, where the host allows it (no-op without a host). */
export function exit(code: number): void {
  if (host && host.exit) host.exit(code);
  else fallbackLog('app[EXIT] ' + code + ' (no host)');
}
