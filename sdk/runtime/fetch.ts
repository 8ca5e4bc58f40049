/**
 * A small fetch: `fetch(url, { ca, servername, method, headers, body, maxBytes, timeout })`
 * returns a Promise of `{ status, statusText, ok, headers, text(), json(), bytes() }`. One
 * HTTP/1.1 request per connection (`Connection: close`), the answer read whole (at most
 * `maxBytes`, default 1 MiB), a Content-Length, chunked or close-delimited body.
 *
 * `https:` goes through tls.connect: the server must present a certificate from `ca` (required,
 * PEM) naming `servername` (default: the URL's host), else the promise rejects with the
 * refusal's code (E_TLS_UNTRUSTED, E_TLS_HOSTNAME, ...). A host name is looked up with the
 * runtime's resolver (dns.ts; a failure rejects with its code, ENOTFOUND...); numeric addresses
 * and `localhost` need no query.
 */
import { EventEmitter } from './events';
import { codedError } from './host';
import { connect as netConnect, toBytes } from './net';
import { clearTimeout, setTimeout } from './timers';
import { connect as tlsConnect, type SecureSocket } from './tls';

export interface FetchOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** PEM of the CA the server's certificate must come from (https: required). */
  ca?: string | Uint8Array;
  /** The name the server's certificate must carry (default: the URL's host). */
  servername?: string;
  /** Mutual TLS: this client's PEM certificate and private key (both or neither). */
  cert?: string | Uint8Array;
  key?: string | Uint8Array;
  /** The whole answer, head and body, at most this many bytes (default 1 MiB). */
  maxBytes?: number;
  /** Give up after this many ms (default 30000). */
  timeout?: number;
}

export interface FetchResponse {
  status: number;
  statusText: string;
  ok: boolean;
  /** Lower-case names; repeats joined with ', '. */
  headers: Record<string, string>;
  bytes(): Promise<Uint8Array>;
  text(): Promise<string>;
  json(): Promise<unknown>;
}

const URL_RE = /^(https?):\/\/(\[[0-9A-Fa-f:.]+\]|[^/:?#\[\]@]+)(?::(\d{1,5}))?([/?][^#]*)?(#.*)?$/;

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (let i = 0; i < parts.length; i++) {
    out.set(parts[i], at);
    at += parts[i].length;
  }
  return out;
}

function latin1(b: Uint8Array, from: number, to: number): string {
  let s = '';
  for (let i = from; i < to; i++) s += String.fromCharCode(b[i]);
  return s;
}

function decodeUtf8(b: Uint8Array): string {
  if (typeof TextDecoder !== 'undefined') return new TextDecoder().decode(b);
  return decodeURIComponent(escape(latin1(b, 0, b.length)));
}

function headEnd(b: Uint8Array): number {
  for (let i = 3; i < b.length; i++) {
    if (b[i] === 10 && b[i - 1] === 13 && b[i - 2] === 10 && b[i - 3] === 13) return i + 1;
  }
  return -1;
}

function bad(message: string): Error {
  return codedError('E_FETCH_RESPONSE', 'fetch: ' + message);
}

/** Decodes a chunked body; throws on a malformed one. */
function dechunk(b: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  let at = 0;
  for (;;) {
    let eol = -1;
    for (let i = at; i + 1 < b.length; i++) if (b[i] === 13 && b[i + 1] === 10) { eol = i; break; }
    if (eol < 0) throw bad('a chunked body was cut off');
    const sizeText = latin1(b, at, eol).split(';')[0].trim();
    if (!/^[0-9A-Fa-f]{1,8}$/.test(sizeText)) throw bad('a bad chunk size');
    const size = parseInt(sizeText, 16);
    at = eol + 2;
    if (size === 0) return concat(parts, total);
    if (at + size + 2 > b.length) throw bad('a chunked body was cut off');
    parts.push(b.subarray(at, at + size));
    total += size;
    at += size + 2;
  }
}

function parseResponse(all: Uint8Array, method: string): FetchResponse {
  const end = headEnd(all);
  if (end < 0) throw bad('the answer ended before its headers did');
  const lines = latin1(all, 0, end - 4).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]);
  if (!m) throw bad('not an HTTP/1.x status line: ' + JSON.stringify(lines[0].slice(0, 80)));
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const c = lines[i].indexOf(':');
    if (c <= 0) throw bad('a malformed header line');
    const name = lines[i].slice(0, c).trim().toLowerCase();
    const value = lines[i].slice(c + 1).trim();
    headers[name] = Object.prototype.hasOwnProperty.call(headers, name) ? headers[name] + ', ' + value : value;
  }
  const status = Number(m[1]);
  let body = all.subarray(end);
  if (method === 'HEAD' || status === 204 || status === 304 || status < 200) body = new Uint8Array(0);
  else if (/chunked/i.test(headers['transfer-encoding'] || '')) body = dechunk(body);
  else if (headers['content-length'] !== undefined) {
    if (!/^\d{1,15}$/.test(headers['content-length'])) throw bad('a bad Content-Length');
    const n = Number(headers['content-length']);
    if (body.length < n) throw bad('the body was cut off (' + body.length + ' of ' + n + ' bytes)');
    body = body.subarray(0, n);
  }
  const bytes = body;
  return {
    status,
    statusText: m[2] || '',
    ok: status >= 200 && status < 300,
    headers,
    bytes: function () { return Promise.resolve(bytes); },
    text: function () { return Promise.resolve(decodeUtf8(bytes)); },
    json: function () {
      return new Promise(function (resolve) { resolve(JSON.parse(decodeUtf8(bytes))); });
    },
  };
}

export function fetch(url: string, options?: FetchOptions): Promise<FetchResponse> {
  const o = options || {};
  return new Promise<FetchResponse>(function (resolve, reject) {
    const u = URL_RE.exec(url);
    if (!u) {
      reject(codedError('E_FETCH_URL', "fetch: '" + url + "' is not an http:// or https:// URL"));
      return;
    }
    const secure = u[1] === 'https';
    const host = u[2].charAt(0) === '[' ? u[2].slice(1, -1) : u[2];
    const port = u[3] !== undefined ? Number(u[3]) : secure ? 443 : 80;
    const path = u[4] === undefined ? '/' : u[4].charAt(0) === '?' ? '/' + u[4] : u[4];
    const method = (o.method || 'GET').toUpperCase();
    if (!/^[A-Z]{1,16}$/.test(method)) {
      reject(codedError('E_FETCH_METHOD', 'fetch: bad method ' + JSON.stringify(method)));
      return;
    }
    const maxBytes = o.maxBytes !== undefined ? o.maxBytes : 1024 * 1024;
    const body = o.body !== undefined ? toBytes(o.body) : undefined;
    let head = method + ' ' + path + ' HTTP/1.1\r\nHost: ' + (u[2] + (u[3] !== undefined ? ':' + u[3] : '')) + '\r\nConnection: close\r\n';
    const h = o.headers || {};
    for (const k in h) {
      if (!Object.prototype.hasOwnProperty.call(h, k)) continue;
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(k) || /[\r\n\0]/.test(h[k])) {
        reject(codedError('E_FETCH_HEADER', 'fetch: bad header ' + JSON.stringify(k)));
        return;
      }
      head += k + ': ' + h[k] + '\r\n';
    }
    if (body) head += 'Content-Length: ' + body.length + '\r\n';
    head += '\r\n';

    let socket: SecureSocket;
    try {
      socket = secure
        ? tlsConnect({ port, host, servername: o.servername || host, ca: o.ca, cert: o.cert, key: o.key })
        : (netConnect({ port, host }) as unknown as SecureSocket);
    } catch (e) {
      reject(e);
      return;
    }
    const parts: Uint8Array[] = [];
    let total = 0;
    let settled = false;
    const timer = setTimeout(function () {
      finish(codedError('E_FETCH_TIMEOUT', 'fetch: no complete answer from ' + url + ' in ' + (o.timeout !== undefined ? o.timeout : 30000) + ' ms'));
    }, o.timeout !== undefined ? o.timeout : 30000);
    function finish(err?: Error): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        socket.destroy();
        reject(err);
        return;
      }
      try {
        resolve(parseResponse(concat(parts, total), method));
      } catch (e) {
        reject(e);
      }
    }
    (socket as unknown as EventEmitter).on(secure ? 'secureConnect' : 'connect', function () {
      socket.write(head);
      if (body && body.length > 0) socket.write(body);
    });
    socket.on('data', function (d: Uint8Array) {
      total += d.length;
      if (total > maxBytes) {
        finish(codedError('E_FETCH_TOO_LARGE', 'fetch: the answer from ' + url + ' is over ' + maxBytes + ' bytes'));
        return;
      }
      parts.push(new Uint8Array(d));
    });
    socket.on('error', function (e: Error) { finish(e); });
    socket.on('end', function () { finish(); });
    socket.on('close', function () { finish(); });
  });
}
