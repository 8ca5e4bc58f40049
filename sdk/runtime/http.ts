/**
 * An HTTP/1.1 server, a subset of node:http: createServer([options], handler), Server (listen,
 * close, address), IncomingMessage (method, url, httpVersion, headers, rawHeaders; events data
 * and end) and ServerResponse (statusCode, statusMessage, setHeader, getHeader, hasHeader,
 * removeHeader, writeHead, write, end, headersSent; event finish). Parsing is JavaScript
 * (http-parser.ts), bounded; a bad request is answered 400/413/431/501/505 and the connection
 * closed. Keep-alive as HTTP/1.1 has it, pipelined requests answered in order, idle
 * connections closed after keepAliveTimeout. Request bodies need a Content-Length and are read
 * whole (up to maxBodyBytes) before the handler runs. With `tls: { cert, key }` the server
 * speaks HTTPS (tls.ts: the host's TLS engine on a device, node:tls under Node).
 */
import { EventEmitter } from './events';
import { DEFAULT_LIMITS, HttpParseError, HttpRequestParser, reasonPhrase, type HttpLimits, type ParsedRequest } from './http-parser';
import { Server as NetServer, Socket, toBytes } from './net';
import { Server as TlsServer, type SecureSocket, type TlsServerOptions } from './tls';
import { clearTimeout, setTimeout, type Timeout } from './timers';

export { HttpParseError, type HttpLimits } from './http-parser';

export interface ServerOptions extends Partial<HttpLimits> {
  /** Open connections at most (default 256); more are closed as they arrive. */
  maxConnections?: number;
  /** Close a connection idle between requests after this long (ms, default 5000). */
  keepAliveTimeout?: number;
  /** Close a connection whose request has not fully arrived after this long (ms, default 30000). */
  requestTimeout?: number;
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: TlsServerOptions;
}

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

export class IncomingMessage extends EventEmitter {
  readonly method: string;
  readonly url: string;
  readonly httpVersion: string;
  readonly headers: Record<string, string>;
  readonly rawHeaders: string[];
  readonly socket: Socket;
  /** @internal */
  readonly body: Uint8Array;

  constructor(r: ParsedRequest, socket: Socket) {
    super();
    this.method = r.method;
    this.url = r.url;
    this.httpVersion = r.httpVersion;
    this.headers = r.headers;
    this.rawHeaders = r.rawHeaders;
    this.body = r.body;
    this.socket = socket;
  }
}

/** Bodies are not allowed for these statuses, nor for answers to HEAD. */
function bodyless(status: number, method: string): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}

export class ServerResponse extends EventEmitter {
  statusCode = 200;
  statusMessage: string | undefined;
  headersSent = false;
  writableEnded = false;
  private names: Record<string, string> = {};
  private values: Record<string, string | string[]> = {};
  private chunked = false;
  private socket: Socket;
  private req: IncomingMessage;
  private keepAlive: boolean;
  private done: (keepAlive: boolean) => void;

  /** @internal */
  constructor(req: IncomingMessage, socket: Socket, keepAlive: boolean, done: (keepAlive: boolean) => void) {
    super();
    this.req = req;
    this.socket = socket;
    this.keepAlive = keepAlive;
    this.done = done;
  }

  setHeader(name: string, value: string | number | string[]): this {
    if (this.headersSent) throw new Error('setHeader: the headers were already sent');
    const key = name.toLowerCase();
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) throw new TypeError('invalid header name ' + JSON.stringify(name));
    const v = typeof value === 'number' ? String(value) : value;
    const list = typeof v === 'string' ? [v] : v;
    for (let i = 0; i < list.length; i++) {
      if (/[\r\n\0]/.test(list[i])) throw new TypeError('invalid value for header ' + name);
    }
    this.names[key] = name;
    this.values[key] = v;
    return this;
  }

  getHeader(name: string): string | string[] | undefined {
    return this.values[name.toLowerCase()];
  }

  hasHeader(name: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.values, name.toLowerCase());
  }

  removeHeader(name: string): void {
    if (this.headersSent) throw new Error('removeHeader: the headers were already sent');
    delete this.names[name.toLowerCase()];
    delete this.values[name.toLowerCase()];
  }

  writeHead(status: number, reason?: string | Record<string, string | number | string[]>, headers?: Record<string, string | number | string[]>): this {
    if (this.headersSent) throw new Error('writeHead: the headers were already sent');
    if (typeof reason === 'object') {
      headers = reason;
      reason = undefined;
    }
    if (!(status >= 100 && status <= 999) || Math.floor(status) !== status) throw new RangeError('invalid status code ' + status);
    this.statusCode = status;
    if (reason !== undefined) this.statusMessage = reason;
    if (headers) for (const k in headers) if (Object.prototype.hasOwnProperty.call(headers, k)) this.setHeader(k, headers[k]);
    return this;
  }

  private sendHead(bodyLength: number | undefined): void {
    const noBody = bodyless(this.statusCode, this.req.method);
    if (!this.hasHeader('content-length') && !noBody) {
      if (bodyLength !== undefined) this.setHeader('Content-Length', bodyLength);
      else if (this.req.httpVersion === '1.1') {
        this.setHeader('Transfer-Encoding', 'chunked');
        this.chunked = true;
      } else this.keepAlive = false; // HTTP/1.0 without a length: the close ends the body
    }
    const conn = this.getHeader('connection');
    if (typeof conn === 'string' && /close/i.test(conn)) this.keepAlive = false;
    this.setHeader('Connection', this.keepAlive ? 'keep-alive' : 'close');
    const reason = this.statusMessage !== undefined ? this.statusMessage.replace(/[\r\n]/g, ' ') : reasonPhrase(this.statusCode);
    let head = 'HTTP/1.1 ' + this.statusCode + ' ' + reason + '\r\n';
    for (const key in this.values) {
      if (!Object.prototype.hasOwnProperty.call(this.values, key)) continue;
      const v = this.values[key];
      const list = typeof v === 'string' ? [v] : v;
      for (let i = 0; i < list.length; i++) head += this.names[key] + ': ' + list[i] + '\r\n';
    }
    this.headersSent = true;
    this.socket.write(head + '\r\n');
  }

  /** Sends a piece of the body (the headers first, chunked when no Content-Length was set). */
  write(chunk: string | Uint8Array): boolean {
    if (this.writableEnded) throw new Error('write after end');
    if (!this.headersSent) this.sendHead(undefined);
    const bytes = toBytes(chunk);
    if (bodyless(this.statusCode, this.req.method) || bytes.length === 0) return true;
    if (this.chunked) {
      this.socket.write(bytes.length.toString(16) + '\r\n');
      this.socket.write(bytes);
      return this.socket.write('\r\n');
    }
    return this.socket.write(bytes);
  }

  /** Ends the response (with a last piece of body); sets Content-Length when it is all here. */
  end(chunk?: string | Uint8Array, cb?: () => void): this {
    if (this.writableEnded) return this;
    const bytes = chunk !== undefined && chunk !== null ? toBytes(chunk) : undefined;
    if (!this.headersSent) this.sendHead(bytes ? bytes.length : 0);
    if (bytes) this.write(bytes);
    if (this.chunked) this.socket.write('0\r\n\r\n');
    this.writableEnded = true;
    if (cb) this.once('finish', cb);
    this.emit('finish');
    this.done(this.keepAlive);
    return this;
  }
}

export class Server extends EventEmitter {
  readonly options: ServerOptions;
  private net: NetServer | TlsServer;

  constructor(options: ServerOptions | RequestListener | undefined, handler?: RequestListener) {
    super();
    if (typeof options === 'function') {
      handler = options;
      options = {};
    }
    this.options = options || {};
    if (handler) this.on('request', handler);
    const self = this;
    this.net = this.options.tls
      ? new TlsServer(this.options.tls, function (socket: SecureSocket) { serveConnection(self, socket as unknown as Socket); })
      : new NetServer(function (socket: Socket) { serveConnection(self, socket); });
    // A device has little memory: bound what a flood of connections can hold.
    this.net.maxConnections = this.options.maxConnections !== undefined ? this.options.maxConnections : 256;
    this.net.on('listening', function () { self.emit('listening'); });
    this.net.on('error', function (e: Error) { self.emit('error', e); });
    this.net.on('close', function () { self.emit('close'); });
  }

  listen(port: number, host?: string | (() => void), cb?: () => void): this {
    if (typeof host === 'function') {
      cb = host;
      host = undefined;
    }
    if (cb) this.once('listening', cb);
    this.net.listen(port, host as string | undefined);
    return this;
  }

  close(cb?: () => void): this {
    if (cb) this.once('close', cb);
    this.net.close();
    return this;
  }

  address(): { address: string; port: number; family: string } | null {
    return this.net.address();
  }
}

function errorResponse(socket: Socket, e: HttpParseError): void {
  const body = e.status + ' ' + reasonPhrase(e.status) + '\n';
  socket.end('HTTP/1.1 ' + e.status + ' ' + reasonPhrase(e.status) + '\r\nContent-Type: text/plain\r\nContent-Length: ' + body.length + '\r\nConnection: close\r\n\r\n' + body);
}

/** One connection: parse, answer requests one at a time in order, keep alive or close. */
function serveConnection(server: Server, socket: Socket): void {
  const o = server.options;
  const parser = new HttpRequestParser(o);
  const queue: ParsedRequest[] = [];
  let busy = false;
  let closing = false;
  let timer: Timeout | undefined;
  let refused: HttpParseError | undefined;
  const keepAliveMs = o.keepAliveTimeout !== undefined ? o.keepAliveTimeout : 5000;
  const requestMs = o.requestTimeout !== undefined ? o.requestTimeout : 30000;

  const arm = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (closing || busy) return;
    const ms = parser.midRequest ? requestMs : keepAliveMs;
    if (ms > 0) timer = setTimeout(function () {
      if (parser.midRequest) errorResponse(socket, new HttpParseError(408, 'E_HTTP_TIMEOUT', 'the request did not arrive in time'));
      else socket.end();
      closing = true;
    }, ms);
  };

  const next = (): void => {
    if (busy || closing) return;
    const r = queue.shift();
    if (!r) {
      if (refused) {
        closing = true;
        if (timer) clearTimeout(timer);
        errorResponse(socket, refused);
        return;
      }
      arm();
      return;
    }
    busy = true;
    arm();
    const req = new IncomingMessage(r, socket);
    const res = new ServerResponse(req, socket, r.keepAlive, function (keepAlive: boolean) {
      busy = false;
      if (!keepAlive) {
        closing = true;
        socket.end();
        return;
      }
      next();
    });
    try {
      server.emit('request', req, res);
    } catch (e) {
      // Reported by the host like any throwing handler; the client still gets an answer.
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end();
      } else if (!res.writableEnded) socket.destroy();
      throw e;
    }
    // The body is all here: deliver it once the handler has had a chance to listen.
    setTimeout(function () {
      if (req.body.length > 0) req.emit('data', req.body);
      req.emit('end');
    }, 0);
  };

  socket.on('data', function (bytes: Uint8Array) {
    if (closing) return;
    const got = parser.push(bytes);
    for (let i = 0; i < got.requests.length; i++) queue.push(got.requests[i]);
    // A bad request is answered after the good ones before it (answers stay in order).
    if (got.error) {
      refused = got.error;
      server.emit('clientError', got.error, socket);
    }
    if (!busy) next();
    else arm();
  });
  socket.on('error', function () {
    // a reset peer: nothing to answer
  });
  socket.on('close', function () {
    closing = true;
    if (timer) clearTimeout(timer);
  });
  arm();
}

export function createServer(options?: ServerOptions | RequestListener, handler?: RequestListener): Server {
  return new Server(options, handler);
}

export { DEFAULT_LIMITS };
