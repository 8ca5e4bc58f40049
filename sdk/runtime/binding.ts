/**
 * The event-loop binding the runtime's timers, net, dgram and http are built on: on a device the
 * C host's `signet_native.uv` (libuv, bootloader/native/host.c), handed to the app as
 * `__signet_host.uv`; under Node a shim over node:net and node:dgram (node-binding.ts). Types
 * only. Ids are numbers; each handle has one handler, called as handler(event, ...args):
 *
 *   timer  'timeout'
 *   tcp    'connection' id | 'connect' [code, message] | 'data' bytes | 'end'
 *          | 'written' [code, message] | 'shutdown' [code, message] | 'error' code, message
 *   udp    'message' bytes, address, port | 'sent' [code, message] | 'error' code, message
 *   all    'close' (the last event; the id is invalid afterwards)
 *
 * Calls that fail at once throw an Error whose `code` is libuv's name (EADDRINUSE...).
 * Addresses are numeric IPv4 or IPv6; there are no name lookups.
 */
export type UvHandler = (event: string, a?: unknown, b?: unknown, c?: unknown) => void;

export interface UvAddress {
  address: string;
  port: number;
  family: string;
}

export interface UvBinding {
  timerStart(handler: UvHandler, timeoutMs: number, repeatMs: number): number;
  tcpListen(handler: UvHandler, host: string, port: number, backlog: number): number;
  tcpConnect(handler: UvHandler, host: string, port: number): number;
  setHandler(id: number, handler: UvHandler): void;
  readStart(id: number): void;
  readStop(id: number): void;
  /** Queues bytes (copied); one 'written' per call, in order. Returns the bytes queued. */
  write(id: number, bytes: Uint8Array): number;
  shutdown(id: number): void;
  setNoDelay(id: number, on: boolean): void;
  address(id: number): UvAddress;
  remoteAddress(id: number): UvAddress;
  udpBind(handler: UvHandler, host: string, port: number): number;
  udpSend(id: number, bytes: Uint8Array, host: string, port: number): void;
  close(id: number): void;
  ref(id: number, on: boolean): void;
  /** The loop's clock in milliseconds. */
  now(): number;
  /**
   * Runs the loop until no handle keeps it alive; true if a handler threw on the way. With
   * stopOnError the loop stops at the first handler that throws (the boot stage restarts the
   * service).
   */
  run(stopOnError?: boolean): boolean;
  /** Closes every handle without telling its handler (a service being restarted). */
  closeAll(): void;
  /**
   * True where tcpListen and udpBind finish later (Node): the handler then gets 'listening' or
   * 'error'. On the device they finish in the call (or throw).
   */
  asyncListen?: boolean;
}
