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

/**
 * A cut answer: fetch rejects with E_FETCH_RESPONSE (or the socket's own error when the
 * connection broke) and, once the head had arrived, the error also carries the answer's
 * `status`, `headers` and `partial`: the body bytes that did arrive (decoded, for a chunked
 * body), so a caller can resume from there with Range instead of starting over.
 */
export interface FetchCutInfo {
  status: number;
  headers: Record<string, string>;
  partial: Uint8Array;
}

interface Answer extends FetchCutInfo {
  statusText: string;
  /** Why the body ended early, or '' when it is whole. */
  cut: string;
}

/** Decodes a chunked body; throws on a malformed one. A cut one gives the data that arrived. */
function dechunk(b: Uint8Array): { body: Uint8Array; cut: boolean } {
  const parts: Uint8Array[] = [];
  let total = 0;
  let at = 0;
  for (;;) {
    let eol = -1;
    for (let i = at; i + 1 < b.length; i++) if (b[i] === 13 && b[i + 1] === 10) { eol = i; break; }
    if (eol < 0) return { body: concat(parts, total), cut: true };
    const sizeText = latin1(b, at, eol).split(';')[0].trim();
    if (!/^[0-9A-Fa-f]{1,8}$/.test(sizeText)) throw bad('a bad chunk size');
    const size = parseInt(sizeText, 16);
    at = eol + 2;
    if (size === 0) return { body: concat(parts, total), cut: false };
    if (at + size + 2 > b.length) {
      // The chunk's data that did arrive is body too (its CRLF may be what is missing).
      const piece = b.subarray(at, Math.min(b.length, at + size));
      parts.push(piece);
      return { body: concat(parts, total + piece.length), cut: true };
    }
    parts.push(b.subarray(at, at + size));
    total += size;
    at += size + 2;
  }
}

/** The answer's head and body; throws on a malformed one, a cut body is `cut`. */
function parseAnswer(all: Uint8Array, method: string): Answer {
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
  let cut = '';
  if (method === 'HEAD' || status === 204 || status === 304 || status < 200) body = new Uint8Array(0);
  else if (/chunked/i.test(headers['transfer-encoding'] || '')) {
    const d = dechunk(body);
    body = d.body;
    if (d.cut) cut = 'a chunked body was cut off (after ' + body.length + ' bytes)';
  } else if (headers['content-length'] !== undefined) {
    if (!/^\d{1,15}$/.test(headers['content-length'])) throw bad('a bad Content-Length');
    const n = Number(headers['content-length']);
    if (body.length < n) cut = 'the body was cut off (' + body.length + ' of ' + n + ' bytes)';
    else body = body.subarray(0, n);
  }
  return { status: status, statusText: m[2] || '', headers: headers, partial: body, cut: cut };
}

/** Puts what a cut answer did deliver on the error it rejects with. */
function withPartial(e: Error, a: Answer): Error {
  const info = e as Error & FetchCutInfo;
  info.status = a.status;
  info.headers = a.headers;
  info.partial = a.partial;
  return e;
}

function parseResponse(all: Uint8Array, method: string): FetchResponse {
  const a = parseAnswer(all, method);
  if (a.cut) throw withPartial(bad(a.cut), a);
  const status = a.status;
  const bytes = a.partial;
  return {
    status,
    statusText: a.statusText,
    ok: status >= 200 && status < 300,
    headers: a.headers,
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
    function finish(err?: Error, broke?: boolean): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        socket.destroy();
        if (broke) {
          // The connection broke: what arrived of a cut body goes with the error.
          try {
            const a = parseAnswer(concat(parts, total), method);
            if (a.cut) withPartial(err, a);
          } catch (e) {
            // No head yet, or a malformed one: nothing to hand on.
          }
        }
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
    socket.on('error', function (e: Error) { finish(e, true); });
    socket.on('end', function () { finish(); });
    socket.on('close', function () { finish(); });
  });
}
