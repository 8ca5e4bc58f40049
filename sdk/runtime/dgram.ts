/**
 * UDP, a subset of node:dgram: createSocket('udp4' | 'udp6'[, onMessage]), bind, send, close,
 * address; events listening, message (bytes, { address, port, family, size }), error, close.
 * Messages are Uint8Array; send takes a string (UTF-8) or bytes and an address or a host name
 * (looked up with dns.lookup first; a failed lookup goes to the callback, else 'error').
 */
import type { UvAddress, UvBinding } from './binding';
import { EventEmitter } from './events';
import { codedError, requireLoop } from './host';
import { lookup } from './dns';
import { isIP } from './ip';
import { guard } from './jobs';
import { numericHost, toBytes } from './net';

export interface RemoteInfo {
  address: string;
  port: number;
  family: string;
  size: number;
}

export type SocketType = 'udp4' | 'udp6';

export class Socket extends EventEmitter {
  private type: SocketType;
  private id: number | undefined;
  private b: UvBinding | undefined;
  private sendCallbacks: Array<((e?: Error) => void) | undefined> = [];

  constructor(type: SocketType) {
    super();
    if (type !== 'udp4' && type !== 'udp6') throw new TypeError("dgram.createSocket: type must be 'udp4' or 'udp6', got " + String(type));
    this.type = type;
  }

  /** bind([port][, address][, cb]): port 0 or none = any; address 0.0.0.0 (udp6: ::). */
  bind(port?: number | (() => void), address?: string | (() => void), cb?: () => void): this {
    if (typeof port === 'function') {
      cb = port;
      port = 0;
    }
    if (typeof address === 'function') {
      cb = address;
      address = undefined;
    }
    if (cb) this.once('listening', cb);
    const b = requireLoop('dgram.bind');
    this.b = b;
    const self = this;
    const handler = guard(function (event: string, a?: unknown, c?: unknown, d?: unknown) {
      if (event === 'message') {
        const bytes = a as Uint8Array;
        self.emit('message', bytes, { address: c as string, port: d as number, family: self.type === 'udp6' ? 'IPv6' : 'IPv4', size: bytes.length });
      } else if (event === 'sent') {
        const f = self.sendCallbacks.shift();
        const err = a !== undefined ? codedError(String(a), 'send ' + String(a) + ': ' + String(c)) : undefined;
        if (f) f(err);
        else if (err) self.emit('error', err);
      } else if (event === 'listening') {
        self.emit('listening');
      } else if (event === 'error') {
        self.emit('error', codedError(String(a), String(c)));
      } else if (event === 'close') {
        self.id = undefined;
        self.emit('close');
      }
    });
    const host = numericHost(address as string | undefined, this.type === 'udp6' ? '::' : '0.0.0.0');
    try {
      this.id = b.udpBind(handler, host, (port as number) | 0);
    } catch (e) {
      b.timerStart(guard(function (ev: string) { if (ev === 'timeout') self.emit('error', e); }), 0, 0);
      return this;
    }
    if (!b.asyncListen) b.timerStart(guard(function (ev: string) { if (ev === 'timeout') self.emit('listening'); }), 0, 0);
    return this;
  }

  /**
   * send(msg, port, address[, cb]): one datagram. A socket not bound yet binds to any port
   * first. A host name is looked up first (A records for udp4, AAAA for udp6).
   */
  send(msg: string | Uint8Array, port: number, address: string, cb?: (e?: Error) => void): void {
    if (this.id === undefined) this.bind(0);
    if (this.id === undefined || !this.b) throw codedError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'dgram.send: the socket is closed');
    const host = numericHost(address, '127.0.0.1');
    if (isIP(host) === 0) {
      const self = this;
      const bytes = toBytes(msg);
      lookup(host, { family: this.type === 'udp6' ? 6 : 4 }, function (err: Error | null, resolved?: string) {
        if (err) {
          if (cb) cb(err);
          else self.emit('error', err);
          return;
        }
        if (self.id === undefined) return; // closed meanwhile
        try {
          self.send(bytes, port, resolved as string, cb);
        } catch (e) {
          if (cb) cb(e as Error);
          else self.emit('error', e);
        }
      });
      return;
    }
    this.sendCallbacks.push(cb);
    try {
      this.b.udpSend(this.id, toBytes(msg), numericHost(address, '127.0.0.1'), port);
    } catch (e) {
      this.sendCallbacks.pop();
      throw e;
    }
  }

  close(cb?: () => void): this {
    if (cb) this.once('close', cb);
    if (this.id !== undefined && this.b) this.b.close(this.id);
    return this;
  }

  address(): UvAddress {
    if (this.id === undefined || !this.b) throw codedError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'dgram: the socket is not bound');
    return this.b.address(this.id);
  }
}

export function createSocket(type: SocketType, onMessage?: (msg: Uint8Array, rinfo: RemoteInfo) => void): Socket {
  const s = new Socket(type);
  if (onMessage) s.on('message', onMessage);
  return s;
}
