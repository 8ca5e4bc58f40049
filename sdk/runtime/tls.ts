/**
 * TLS, a subset of node:tls: createServer({ cert, key }, onSecureConnection), connect({ port,
 * host, servername, ca }, cb) and TLSSocket (write, end, destroy, pause, resume, setNoDelay,
 * address; events secureConnect/secure, data, end, error, close).
 *
 * On a device the TLS engine is C (mbed TLS in the host, bootloader/native/tls.c) fed from a
 * runtime TCP socket: ciphertext read from the socket goes into `uv.tlsPush`, what the engine
 * wants sent comes back and is written to the socket. TLS 1.2 with ECDHE and AEAD ciphers only,
 * no renegotiation. A client must be given the CA to trust (`ca`); the server's chain is verified
 * against it and its certificate must name `servername` (default: `host`). A refusal is an
 * 'error' with `code` E_TLS_UNTRUSTED (not from that CA), E_TLS_HOSTNAME (not for that name),
 * E_TLS_CERT (e.g. expired), E_TLS_HANDSHAKE or E_TLS_ALERT.
 *
 * Under Node (no host) the same calls go to node:tls, with the same refusal codes.
 */
import type { UvBinding } from './binding';
import { EventEmitter } from './events';
import { codedError, requireLoop } from './host';
import { connect as netConnect, numericHost, Server as NetServer, Socket, toBytes } from './net';
import { lookup as dnsLookup } from './dns';
import { clearTimeout, setTimeout, type Timeout } from './timers';

export interface SecureContextOptions {
  /** PEM certificate (chain) of a server, or of a client for mutual TLS. */
  cert?: string | Uint8Array;
  /** PEM private key of a server or client (PKCS#8, PKCS#1 or SEC1). */
  key?: string | Uint8Array;
  /** PEM certificate(s) of the CA a client trusts; required for a client. */
  ca?: string | Uint8Array;
}

export interface TlsServerOptions extends SecureContextOptions {
  /** A connection whose handshake is not done after this long is closed (ms, default 10000). */
  handshakeTimeout?: number;
}

export interface ConnectOptions extends SecureContextOptions {
  port: number;
  /** Numeric address ('localhost' is 127.0.0.1); default 127.0.0.1. */
  host?: string;
  /** The name the server's certificate must carry (default: host). */
  servername?: string;
}

/** The socket both hosts hand out: on the device our TLSSocket, under Node node:tls's. */
export interface SecureSocket extends EventEmitter {
  write(data: string | Uint8Array, cb?: (e?: Error) => void): boolean;
  end(data?: string | Uint8Array, cb?: () => void): unknown;
  destroy(err?: Error): unknown;
  pause(): unknown;
  resume(): unknown;
  setNoDelay(on?: boolean): unknown;
  remoteAddress?: string;
  remotePort?: number;
}

const STATE_OPEN = 1;
const STATE_CLOSED = 2;
const STATE_FAILED = 3;

interface NodeProcess {
  getBuiltinModule?(name: string): unknown;
}
declare const process: NodeProcess | undefined;

interface NodeTls {
  connect(o: Record<string, unknown>): SecureSocket;
  createServer(o: Record<string, unknown>): NodeTlsServer;
}
interface NodeTlsServer extends EventEmitter {
  listen(o: { port: number; host: string }): unknown;
  close(): unknown;
  address(): { address: string; port: number; family: string } | null;
  maxConnections: number;
}

type DeviceTls = UvBinding & Required<Pick<UvBinding, 'tlsConfig' | 'tlsSession' | 'tlsPush' | 'tlsWrite' | 'tlsEnd'>>;

/** The device's TLS engine, or null (then node:tls). */
function deviceTls(b: UvBinding): DeviceTls | null {
  return typeof b.tlsConfig === 'function' ? (b as DeviceTls) : null;
}

function nodeTls(): NodeTls {
  const p = typeof process !== 'undefined' ? process : undefined;
  const m = p && typeof p.getBuiltinModule === 'function' ? (p.getBuiltinModule('node:tls') as NodeTls) : undefined;
  if (!m) throw codedError('E_NO_TLS', 'tls: this host has no TLS engine');
  return m;
}

function pem(v: string | Uint8Array | undefined): string | Uint8Array | null {
  return v === undefined || v === null ? null : v;
}

/** Node's verification codes, as the device names them. */
function nodeRefusal(e: Error & { code?: string }): Error {
  const c = e.code || '';
  let code = c;
  if (c === 'ERR_TLS_CERT_ALTNAME_INVALID') code = 'E_TLS_HOSTNAME';
  else if (/^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_SIGNATURE_FAILURE)$/.test(c)) code = 'E_TLS_UNTRUSTED';
  else if (/^CERT_(HAS_EXPIRED|NOT_YET_VALID)$/.test(c)) code = 'E_TLS_CERT';
  if (code === c) return e;
  const out = codedError(code, e.message);
  return out;
}

/** TLS over a runtime TCP socket, with the host's engine (device only). */
export class TLSSocket extends EventEmitter implements SecureSocket {
  encrypted = true;
  /** True once the handshake is done (and, for a client, the server's certificate verified). */
  authorized = false;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  destroyed = false;
  private raw: Socket;
  private tls: DeviceTls;
  private session: unknown;
  private state = 0;
  private pending: Array<{ data: Uint8Array; cb: ((e?: Error) => void) | undefined }> = [];
  private ending: { cb: (() => void) | undefined } | undefined;
  private error: Error | undefined;

  /** @internal */
  constructor(tls: DeviceTls, raw: Socket, config: unknown, serverName: string | null) {
    super();
    this.tls = tls;
    this.raw = raw;
    this.remoteAddress = raw.remoteAddress;
    this.remotePort = raw.remotePort;
    this.session = tls.tlsSession(config, serverName);
    const self = this;
    raw.on('data', function (bytes: Uint8Array) { self.push(bytes); });
    raw.on('end', function () {
      if (self.state !== STATE_CLOSED) {
        self.state = STATE_CLOSED;
        self.emit('end');
      }
    });
    raw.on('error', function (e: Error) { if (!self.error) self.error = e; });
    raw.on('close', function () {
      self.destroyed = true;
      const err = self.error;
      self.error = undefined;
      if (err) self.emit('error', err);
      self.emit('close', err !== undefined);
    });
  }

  /** @internal Feeds ciphertext (or nothing, to start a client's handshake). */
  push(bytes: Uint8Array | null): void {
    if (this.destroyed || this.state === STATE_FAILED) return;
    const r = this.tls.tlsPush(this.session, bytes);
    const was = this.state;
    this.state = r[0];
    if (r[2]) this.raw.write(r[2]);
    if (r[0] === STATE_FAILED) {
      this.destroy(codedError(String(r[3]), 'TLS ' + String(r[3]) + ': ' + String(r[4])));
      return;
    }
    if (was === 0 && r[0] >= STATE_OPEN) {
      this.authorized = true;
      const queued = this.pending;
      this.pending = [];
      for (let i = 0; i < queued.length; i++) this.write(queued[i].data, queued[i].cb);
      if (this.ending) this.end(undefined, this.ending.cb);
      this.emit('secure');
    }
    if (r[1]) this.emit('data', r[1]);
    if (r[0] === STATE_CLOSED && was !== STATE_CLOSED) {
      this.emit('end');
      this.end();
    }
  }

  write(data: string | Uint8Array, cb?: (e?: Error) => void): boolean {
    const bytes = toBytes(data);
    if (this.destroyed || (this.ending && this.authorized)) {
      if (cb) cb(codedError('ERR_STREAM_WRITE_AFTER_END', 'write after end'));
      return false;
    }
    if (!this.authorized) {
      this.pending.push({ data: bytes, cb });
      return true;
    }
    if (bytes.length === 0) {
      if (cb) cb();
      return true;
    }
    return this.raw.write(this.tls.tlsWrite(this.session, bytes), cb);
  }

  /** Sends the data, if any, then close_notify and FIN. */
  end(data?: string | Uint8Array, cb?: () => void): this {
    if (data !== undefined && data !== null) this.write(data);
    if (!this.authorized) {
      if (!this.ending) this.ending = { cb };
      return this;
    }
    if (this.ending && this.ending.cb !== cb) {
      if (cb) this.raw.once('finish', cb);
      return this;
    }
    this.ending = { cb: undefined };
    if (this.raw.writableEnded) return this;
    const alert = this.tls.tlsEnd(this.session);
    this.raw.end(alert || undefined, cb);
    return this;
  }

  destroy(err?: Error): this {
    if (err && !this.error) this.error = err;
    this.raw.destroy();
    return this;
  }

  pause(): this {
    this.raw.pause();
    return this;
  }

  resume(): this {
    this.raw.resume();
    return this;
  }

  setNoDelay(on?: boolean): this {
    this.raw.setNoDelay(on);
    return this;
  }

  address(): ReturnType<Socket['address']> {
    return this.raw.address();
  }
}

/** A TLS server: 'secureConnection' (socket) per finished handshake; 'tlsClientError' (err) per failed one. */
export class Server extends EventEmitter {
  private device: DeviceTls | null;
  private config: unknown;
  private net: NetServer | undefined;
  private node: NodeTlsServer | undefined;
  private max: number | undefined;

  constructor(options: TlsServerOptions, listener?: (s: SecureSocket) => void) {
    super();
    if (listener) this.on('secureConnection', listener);
    const self = this;
    this.device = deviceTls(requireLoop('tls.createServer'));
    if (this.device) {
      // Certificate and key are parsed now: a bad one fails here, not at the first client.
      this.config = this.device.tlsConfig(true, pem(options.cert), pem(options.key), null);
      const tls = this.device;
      const limit = options.handshakeTimeout !== undefined ? options.handshakeTimeout : 10000;
      this.net = new NetServer(function (raw: Socket) {
        let s: TLSSocket;
        try {
          s = new TLSSocket(tls, raw, self.config, null);
        } catch (e) {
          raw.destroy();
          self.emit('tlsClientError', e);
          return;
        }
        let timer: Timeout | undefined = limit > 0 ? setTimeout(function () {
          s.destroy(codedError('E_TLS_HANDSHAKE_TIMEOUT', 'TLS handshake not done in ' + limit + ' ms'));
        }, limit) : undefined;
        s.once('secure', function () {
          if (timer) clearTimeout(timer);
          timer = undefined;
          self.emit('secureConnection', s);
        });
        s.on('error', function (e: Error) {
          if (!s.authorized) self.emit('tlsClientError', e, s);
        });
        s.once('close', function () {
          if (timer) clearTimeout(timer);
        });
      });
      this.net.on('listening', function () { self.emit('listening'); });
      this.net.on('error', function (e: Error) { self.emit('error', e); });
      this.net.on('close', function () { self.emit('close'); });
    } else {
      this.node = nodeTls().createServer({
        cert: options.cert,
        key: options.key,
        minVersion: 'TLSv1.2',
        handshakeTimeout: options.handshakeTimeout !== undefined ? options.handshakeTimeout : 10000,
      });
      this.node.on('secureConnection', function (s: SecureSocket) { self.emit('secureConnection', s); });
      this.node.on('tlsClientError', function (e: Error) { self.emit('tlsClientError', e); });
      this.node.on('listening', function () { self.emit('listening'); });
      this.node.on('error', function (e: Error) { self.emit('error', e); });
      this.node.on('close', function () { self.emit('close'); });
    }
  }

  get maxConnections(): number | undefined {
    return this.max;
  }

  set maxConnections(n: number | undefined) {
    this.max = n;
    if (this.net) this.net.maxConnections = n;
    if (this.node && n !== undefined) this.node.maxConnections = n;
  }

  listen(port: number, host?: string | (() => void), cb?: () => void): this {
    if (typeof host === 'function') {
      cb = host;
      host = undefined;
    }
    if (cb) this.once('listening', cb);
    if (this.net) this.net.listen(port, host as string | undefined);
    else if (this.node) this.node.listen({ port: port | 0, host: numericHost(host as string | undefined, '0.0.0.0') });
    return this;
  }

  close(cb?: () => void): this {
    if (cb) this.once('close', cb);
    if (this.net) this.net.close();
    else if (this.node) this.node.close();
    return this;
  }

  address(): { address: string; port: number; family: string } | null {
    if (this.net) return this.net.address();
    return this.node ? this.node.address() : null;
  }
}

export function createServer(options: TlsServerOptions, listener?: (s: SecureSocket) => void): Server {
  return new Server(options, listener);
}

/**
 * A TLS client connection: 'secureConnect' once the server's certificate is verified against
 * `ca` and names `servername`; otherwise 'error' with the refusal's code, then 'close'.
 */
export function connect(options: ConnectOptions, cb?: () => void): SecureSocket {
  const host = numericHost(options.host, '127.0.0.1');
  const servername = options.servername || (options.host && options.host !== '' ? options.host : 'localhost');
  const b = requireLoop('tls.connect');
  const device = deviceTls(b);
  // Fail closed on both hosts: without a CA, Node would trust its own root store.
  if (options.ca === undefined || options.ca === null || options.ca.length === 0) {
    throw codedError('E_TLS_NO_CA', 'tls.connect: give the CA to verify the server against (options.ca)');
  }
  if (!device) {
    const node = nodeTls().connect({
      host,
      // Names through the runtime's resolver, as on the device (not the system's).
      lookup: dnsLookup,
      port: options.port,
      servername,
      ca: options.ca,
      // Mutual TLS: the client's own certificate and key (a device's identity), when given.
      cert: options.cert,
      key: options.key,
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
    });
    // Node's refusal codes, renamed to the device's.
    const wrapped = node as SecureSocket & { emit(event: string, ...a: unknown[]): boolean };
    const emit = wrapped.emit;
    wrapped.emit = function (event: string, ...a: unknown[]): boolean {
      if (event === 'error' && a[0]) a[0] = nodeRefusal(a[0] as Error);
      return emit.apply(this, [event, ...a]);
    };
    if (cb) node.once('secureConnect', cb);
    return node;
  }
  // Parsed before any connection: a bad CA or a missing name is thrown here.
  const config = device.tlsConfig(false, pem(options.cert), pem(options.key), options.ca);
  const raw = netConnect({ port: options.port, host });
  const s = new TLSSocket(device, raw, config, servername);
  if (cb) s.once('secureConnect', cb);
  s.once('secure', function () { s.emit('secureConnect'); });
  raw.once('connect', function () { s.push(null); });
  return s;
}
