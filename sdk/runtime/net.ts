/**
 * TCP, a subset of node:net: createServer, connect/createConnection, Server (listen, close,
 * address) and Socket (write, end, destroy, pause, resume, setNoDelay, address, remoteAddress,
 * remotePort; events connect, data, end, drain, finish, error, close). Data arrives as
 * Uint8Array (there is no Buffer on the device); write takes a string (UTF-8) or bytes.
 * connect() takes a hostname too: it is looked up first (dns.lookup; writes wait for it), and a
 * failed lookup is the socket's 'error' (ENOTFOUND...). Servers listen on numeric addresses
 * ('localhost' is 127.0.0.1). isIP, isIPv4 and isIPv6 as in node:net.
 */
import type { UvAddress, UvBinding } from './binding';
import { lookup } from './dns';
import { EventEmitter } from './events';
import { codedError, requireLoop } from './host';
import { isIP } from './ip';
import { guard } from './jobs';

export { isIP, isIPv4, isIPv6 } from './ip';

/** Bytes queued beyond which write() returns false (wait for 'drain'). */
const HIGH_WATER_MARK = 16 * 1024;

const encoder = typeof TextEncoder !== 'undefined' ? new TextEncoder() : undefined;

export function toBytes(data: string | Uint8Array): Uint8Array {
  if (typeof data !== 'string') return data;
  if (encoder) return encoder.encode(data);
  // UTF-8 by hand where TextEncoder is missing
  const out: number[] = [];
  const s = unescape(encodeURIComponent(data));
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i));
  return new Uint8Array(out);
}

export function numericHost(host: string | undefined, fallback: string): string {
  if (host === undefined || host === null || host === '') return fallback;
  return host === 'localhost' ? '127.0.0.1' : host;
}

function nextTick(f: () => void): void {
  const b = requireLoop('net');
  b.timerStart(guard(function (e: string) {
    if (e === 'timeout') f();
  }), 0, 0);
}

export class Socket extends EventEmitter {
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  remoteFamily: string | undefined;
  bytesWritten = 0;
  bytesRead = 0;
  readableEnded = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  connecting = false;
  private id: number | undefined;
  private b: UvBinding;
  private pendingBytes = 0;
  private writeQueue: Array<{ len: number; cb: ((e?: Error) => void) | undefined }> = [];
  private paused = false;
  private needDrain = false;
  private pendingError: Error | undefined;
  /** Writes made while the host name is being looked up, sent once there is a connection. */
  private early: Array<{ bytes: Uint8Array; cb: ((e?: Error) => void) | undefined }> | undefined;

  /** @internal Sockets are made by connect() and by a server; not by user code. */
  constructor(b: UvBinding, id?: number) {
    super();
    this.b = b;
    if (id !== undefined) this.attach(id);
  }

  /** @internal */
  attach(id: number): void {
    this.id = id;
    const self = this;
    this.b.setHandler(id, guard(function (event: string, a?: unknown, c?: unknown) {
      self.onEvent(event, a, c);
    }));
    try {
      const r = this.b.remoteAddress(id);
      this.remoteAddress = r.address;
      this.remotePort = r.port;
      this.remoteFamily = r.family;
    } catch {
      // not connected yet
    }
    if (!this.paused) this.b.readStart(id);
  }

  /** @internal */
  connectTo(port: number, host: string): void {
    const self = this;
    this.connecting = true;
    if (isIP(host) !== 0) {
      this.id = this.b.tcpConnect(guard(function (event: string, a?: unknown, c?: unknown) {
        self.onEvent(event, a, c);
      }), host, port);
      return;
    }
    // A name: look it up, then connect; what was written meanwhile goes out in order after.
    this.early = [];
    lookup(host, { family: 0 }, function (err: Error | null, address?: string) {
      if (self.destroyed) return;
      if (err) {
        self.connecting = false;
        self.early = undefined;
        self.destroy(err);
        return;
      }
      const waiting = self.early || [];
      self.early = undefined;
      try {
        self.connectTo(port, address as string);
      } catch (e) {
        self.destroy(e as Error);
        return;
      }
      for (let i = 0; i < waiting.length; i++) {
        self.pendingBytes -= waiting[i].bytes.length; // counted again as it is sent
        self.send(waiting[i].bytes, waiting[i].cb);
      }
      if (self.writableEnded && !self.destroyed) self.b.shutdown(self.id as number);
    });
  }

  private onEvent(event: string, a?: unknown, c?: unknown): void {
    switch (event) {
      case 'connect':
        this.connecting = false;
        if (a !== undefined) {
          this.destroy(codedError(String(a), 'connect ' + String(a) + ': ' + String(c)));
          return;
        }
        this.attach(this.id as number);
        this.emit('connect');
        break;
      case 'data':
        this.bytesRead += (a as Uint8Array).length;
        this.emit('data', a);
        break;
      case 'end':
        this.readableEnded = true;
        this.emit('end');
        // Like Node's default (allowHalfOpen false): the peer is done, so are we.
        if (!this.writableEnded) this.end();
        else if (this.writableFinished) this.destroy();
        break;
      case 'written': {
        const w = this.writeQueue.shift();
        if (w) this.pendingBytes -= w.len;
        const err = a !== undefined ? codedError(String(a), 'write ' + String(a) + ': ' + String(c)) : undefined;
        if (w && w.cb) w.cb(err);
        if (err) {
          this.destroy(err);
          return;
        }
        if (this.needDrain && this.pendingBytes === 0) {
          this.needDrain = false;
          this.emit('drain');
        }
        break;
      }
      case 'shutdown':
        this.writableFinished = true;
        this.emit('finish');
        if (this.readableEnded) this.destroy();
        break;
      case 'error':
        this.destroy(codedError(String(a), String(c)));
        break;
      case 'close':
        this.id = undefined;
        this.destroyed = true;
        this.finishClose();
        break;
    }
  }

  /** Queues data; false when more than 16 KiB wait to be sent (then wait for 'drain'). */
  write(data: string | Uint8Array, cb?: (e?: Error) => void): boolean {
    if (this.early && !this.writableEnded && !this.destroyed) {
      // still looking the host up: kept, and counted against the high-water mark
      const early = toBytes(data);
      this.early.push({ bytes: early, cb });
      this.pendingBytes += early.length;
      if (this.pendingBytes >= HIGH_WATER_MARK) this.needDrain = true;
      return !this.needDrain;
    }
    if (this.writableEnded || this.destroyed || this.id === undefined) {
      const e = codedError('ERR_STREAM_WRITE_AFTER_END', 'write after end');
      if (cb) nextTick(function () { cb(e); });
      return false;
    }
    const bytes = toBytes(data);
    this.send(bytes, cb);
    if (this.pendingBytes >= HIGH_WATER_MARK) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  private send(bytes: Uint8Array, cb: ((e?: Error) => void) | undefined): void {
    this.b.write(this.id as number, bytes);
    this.bytesWritten += bytes.length;
    this.pendingBytes += bytes.length;
    this.writeQueue.push({ len: bytes.length, cb });
  }

  /** Sends the data, if any, then FIN. */
  end(data?: string | Uint8Array, cb?: () => void): this {
    if (data !== undefined && data !== null) this.write(data);
    if (this.writableEnded) return this;
    this.writableEnded = true;
    if (cb) this.once('finish', cb);
    if (this.id !== undefined && !this.destroyed) {
      try {
        this.b.shutdown(this.id);
      } catch (e) {
        this.destroy(e as Error);
      }
    }
    return this;
  }

  /** Closes at once; 'error' (if given one), then 'close'. */
  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.writableEnded = true;
    this.pendingError = err;
    if (this.id !== undefined) {
      this.b.close(this.id); // 'close' follows from the loop
      return this;
    }
    const self = this;
    nextTick(function () { self.finishClose(); });
    return this;
  }

  private finishClose(): void {
    const err = this.pendingError;
    this.pendingError = undefined;
    if (err) this.emit('error', err);
    this.emit('close', err !== undefined);
  }

  pause(): this {
    this.paused = true;
    if (this.id !== undefined && !this.connecting) this.b.readStop(this.id);
    return this;
  }

  resume(): this {
    this.paused = false;
    if (this.id !== undefined && !this.connecting && !this.readableEnded) this.b.readStart(this.id);
    return this;
  }

  setNoDelay(on?: boolean): this {
    if (this.id !== undefined && !this.connecting) this.b.setNoDelay(this.id, on !== false);
    return this;
  }

  address(): UvAddress | Record<string, never> {
    return this.id !== undefined ? this.b.address(this.id) : {};
  }
}

export interface ServerOptions {
  /** Stop reading new connections until the listener calls resume(). */
  pauseOnConnect?: boolean;
}

export class Server extends EventEmitter {
  listening = false;
  /** Connections beyond this many open ones are closed as they arrive (Node's property; default none). */
  maxConnections: number | undefined;
  private connections = 0;
  private id: number | undefined;
  private b: UvBinding | undefined;
  private options: ServerOptions;

  constructor(options?: ServerOptions | ((s: Socket) => void), listener?: (s: Socket) => void) {
    super();
    if (typeof options === 'function') {
      listener = options;
      options = {};
    }
    this.options = options || {};
    if (listener) this.on('connection', listener);
  }

  /** listen(port[, host][, backlog][, callback]); host defaults to 0.0.0.0. */
  listen(port: number, host?: string | (() => void), backlog?: number | (() => void), cb?: () => void): this {
    if (typeof host === 'function') {
      cb = host;
      host = undefined;
    }
    if (typeof backlog === 'function') {
      cb = backlog;
      backlog = undefined;
    }
    if (cb) this.once('listening', cb);
    const b = requireLoop('net.Server.listen');
    this.b = b;
    const self = this;
    const handler = guard(function (event: string, a?: unknown, c?: unknown) {
      if (event === 'connection') {
        if (self.maxConnections !== undefined && self.connections >= self.maxConnections) {
          b.close(a as number);
          self.emit('drop', { limit: self.maxConnections });
          return;
        }
        const s = new Socket(b);
        self.connections++;
        s.once('close', function () { self.connections--; });
        if (self.options.pauseOnConnect) s.pause();
        s.attach(a as number);
        self.emit('connection', s);
      } else if (event === 'listening') {
        self.listening = true;
        self.emit('listening');
      } else if (event === 'error') {
        self.emit('error', codedError(String(a), String(c)));
      } else if (event === 'close') {
        self.id = undefined;
        self.listening = false;
        self.emit('close');
      }
    });
    try {
      this.id = b.tcpListen(handler, numericHost(host as string | undefined, '0.0.0.0'), port | 0, (backlog as number) || 511);
    } catch (e) {
      nextTick(function () { self.emit('error', e); });
      return this;
    }
    if (!b.asyncListen) {
      this.listening = true;
      nextTick(function () { self.emit('listening'); });
    }
    return this;
  }

  /** Stops accepting; open connections stay (close them yourself). */
  close(cb?: (e?: Error) => void): this {
    if (cb) this.once('close', cb);
    if (this.id !== undefined && this.b) this.b.close(this.id);
    return this;
  }

  address(): UvAddress | null {
    return this.id !== undefined && this.b ? this.b.address(this.id) : null;
  }

  /** Open connections accepted by this server. */
  getConnections(cb: (err: Error | null, count: number) => void): void {
    cb(null, this.connections);
  }
}

export function createServer(options?: ServerOptions | ((s: Socket) => void), listener?: (s: Socket) => void): Server {
  return new Server(options, listener);
}

export interface ConnectOptions {
  port: number;
  host?: string;
}

/** connect(port[, host][, cb]) or connect({ port, host }[, cb]). */
export function connect(port: number | ConnectOptions, host?: string | (() => void), cb?: () => void): Socket {
  if (typeof host === 'function') {
    cb = host;
    host = undefined;
  }
  const o: ConnectOptions = typeof port === 'object' ? port : { port, host: host as string | undefined };
  const s = new Socket(requireLoop('net.connect'));
  if (cb) s.once('connect', cb);
  try {
    s.connectTo(o.port, numericHost(o.host, '127.0.0.1'));
  } catch (e) {
    s.destroy(e as Error);
  }
  return s;
}

export const createConnection = connect;
