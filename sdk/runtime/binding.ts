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
 * Addresses are numeric IPv4 or IPv6; names are looked up above this, in dns.ts.
 */
export type UvHandler = (event: string, a?: unknown, b?: unknown, c?: unknown) => void;

export interface UvAddress {
  address: string;
  port: number;
  family: string;
}

/**
 * The network /init brought up (bootloader/native/net.c), as it is now: `address` and `prefix`
 * are null while DHCP has no lease; `dns` is the board's servers, else DHCP's.
 */
export interface NetInfo {
  interface: string;
  source: 'dhcp' | 'static';
  address: string | null;
  prefix: number | null;
  gateway: string | null;
  dns: string[];
  /** DHCP only, once a lease is held: the server that gave it and its length (-1: infinite). */
  dhcpServer?: string | null;
  leaseSeconds?: number;
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
  /** The device's network (null: none was brought up); absent under Node. */
  netInfo?(): NetInfo | null;
  /** n bytes from the system's random source (getrandom(2)); absent under Node. */
  random?(n: number): Uint8Array;
  /**
   * True where tcpListen and udpBind finish later (Node): the handler then gets 'listening' or
   * 'error'. On the device they finish in the call (or throw).
   */
  asyncListen?: boolean;
  /*
   * TLS (device only: mbed TLS in the C host, bootloader/native/tls.c; absent under Node, where
   * tls.ts uses node:tls). Config and session are opaque objects freed when unreferenced.
   */
  /** Parses and checks the PEMs once; a client needs caPem, a server certPem and keyPem. */
  tlsConfig?(isServer: boolean, certPem: string | Uint8Array | null, keyPem: string | Uint8Array | null, caPem: string | Uint8Array | null): unknown;
  /** A connection's TLS state; a client's serverName is required (SNI and the name check). */
  tlsSession?(config: unknown, serverName: string | null): unknown;
  /**
   * Feeds ciphertext from the peer (null: just run, e.g. a client's first flight). Returns
   * [state (0 handshake, 1 open, 2 peer closed, 3 failed), plaintext, ciphertext to send, code, message].
   */
  tlsPush?(session: unknown, bytes: Uint8Array | null): [number, Uint8Array | null, Uint8Array | null, string?, string?];
  /** Encrypts plaintext of an open session; returns the ciphertext to send. */
  tlsWrite?(session: unknown, bytes: Uint8Array): Uint8Array;
  /** close_notify to send, or null. */
  tlsEnd?(session: unknown): Uint8Array | null;
}
