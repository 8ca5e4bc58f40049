/**
 * HTTP/1.1 request parsing (RFC 9112), incremental and bounded: bytes go in as they arrive, whole
 * requests come out. Strict where leniency lets two parsers disagree about where a request ends
 * (request smuggling): CRLF line ends only, no obsolete line folding, one Content-Length, no
 * Transfer-Encoding (answered 501: bodies must have a Content-Length). Every refusal carries the
 * status to answer with, after which the connection is closed.
 */

export interface HttpLimits {
  /** Request line plus headers, in bytes (default 16 KiB): 431 beyond. */
  maxHeaderBytes: number;
  /** Header lines (default 100): 431 beyond. */
  maxHeaders: number;
  /** Body bytes (default 1 MiB): 413 beyond. */
  maxBodyBytes: number;
}

export const DEFAULT_LIMITS: HttpLimits = { maxHeaderBytes: 16 * 1024, maxHeaders: 100, maxBodyBytes: 1024 * 1024 };

export interface ParsedRequest {
  method: string;
  url: string;
  /** '1.0' or '1.1'. */
  httpVersion: string;
  /** Lower-case names; repeated headers joined with ', ' (set-cookie kept apart is not needed server-side). */
  headers: Record<string, string>;
  /** Names as sent, then values, alternating (as Node's rawHeaders). */
  rawHeaders: string[];
  body: Uint8Array;
  /** Whether the connection stays open after the response (HTTP/1.1 default, Connection header). */
  keepAlive: boolean;
}

export class HttpParseError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    // Lowered to ES5, Error() returns a plain Error: put the prototype back so instanceof works.
    Object.setPrototypeOf(this, HttpParseError.prototype);
    this.status = status;
    this.code = code;
    this.name = 'HttpParseError';
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Visible ASCII and obs-text in a target; no spaces or controls.
const TARGET = /^[\x21-\x7e\x80-\xff]+$/;
// Field values: visible characters, spaces and tabs, obs-text; no other controls.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

function latin1(bytes: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i += 4096) {
    const part: number[] = [];
    const stop = Math.min(end, i + 4096);
    for (let j = i; j < stop; j++) part.push(bytes[j]);
    s += String.fromCharCode.apply(null, part);
  }
  return s;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Index just past the first CRLFCRLF in bytes (searching from `from`), or -1. */
function headEnd(bytes: Uint8Array, from: number): number {
  for (let i = Math.max(0, from); i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) return i + 4;
  }
  return -1;
}

function parseHead(head: string, limits: HttpLimits): ParsedRequest {
  // Every line ends in CRLF: a lone CR or LF is refused.
  const lines = head.split('\r\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].indexOf('\r') >= 0 || lines[i].indexOf('\n') >= 0) throw new HttpParseError(400, 'E_HTTP_LINE_END', 'a line ends in a bare CR or LF');
  }
  const requestLine = lines[0];
  const parts = requestLine.split(' ');
  if (parts.length !== 3 || !TOKEN.test(parts[0]) || !TARGET.test(parts[1])) {
    throw new HttpParseError(400, 'E_HTTP_REQUEST_LINE', 'the request line is not METHOD SP target SP version');
  }
  const m = /^HTTP\/(\d)\.(\d)$/.exec(parts[2]);
  if (!m) throw new HttpParseError(400, 'E_HTTP_REQUEST_LINE', 'the request line has no HTTP version');
  if (m[1] !== '1' || (m[2] !== '0' && m[2] !== '1')) throw new HttpParseError(505, 'E_HTTP_VERSION', 'only HTTP/1.0 and HTTP/1.1 are served');
  const headers: Record<string, string> = {};
  const rawHeaders: string[] = [];
  // lines ends with two empty strings: the blank line and what follows the final CRLF.
  const count = lines.length - 3;
  if (count > limits.maxHeaders) throw new HttpParseError(431, 'E_HTTP_TOO_MANY_HEADERS', 'more than ' + limits.maxHeaders + ' header lines');
  for (let i = 1; i <= count; i++) {
    const line = lines[i];
    if (line.charAt(0) === ' ' || line.charAt(0) === '\t') throw new HttpParseError(400, 'E_HTTP_FOLDING', 'obsolete line folding');
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name)) throw new HttpParseError(400, 'E_HTTP_HEADER', 'a header line has no valid name');
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_VALUE.test(value)) throw new HttpParseError(400, 'E_HTTP_HEADER', 'header ' + name + ' has a control character');
    const key = name.toLowerCase();
    rawHeaders.push(name, value);
    if (key === 'content-length' && Object.prototype.hasOwnProperty.call(headers, key) && headers[key] !== value) {
      throw new HttpParseError(400, 'E_HTTP_CONTENT_LENGTH', 'two different Content-Length headers');
    }
    headers[key] = Object.prototype.hasOwnProperty.call(headers, key) && key !== 'content-length' ? headers[key] + ', ' + value : value;
  }
  const httpVersion = m[1] + '.' + m[2];
  if (httpVersion === '1.1' && !Object.prototype.hasOwnProperty.call(headers, 'host')) {
    throw new HttpParseError(400, 'E_HTTP_HOST', 'an HTTP/1.1 request without Host');
  }
  if (Object.prototype.hasOwnProperty.call(headers, 'transfer-encoding')) {
    throw new HttpParseError(501, 'E_HTTP_TRANSFER_ENCODING', 'Transfer-Encoding is not supported; send a Content-Length');
  }
  const connection = (headers.connection || '').toLowerCase();
  const keepAlive = httpVersion === '1.1' ? !/(^|,)\s*close\s*(,|$)/.test(connection) : /(^|,)\s*keep-alive\s*(,|$)/.test(connection);
  return { method: parts[0], url: parts[1], httpVersion, headers, rawHeaders, body: new Uint8Array(0), keepAlive };
}

/** Feed bytes with push() as they arrive; complete requests come back in order. */
export class HttpRequestParser {
  private buf: Uint8Array = new Uint8Array(0);
  private scanned = 0;
  private pending: ParsedRequest | undefined;
  private bodyLength = 0;
  private failed = false;
  private limits: HttpLimits;

  constructor(limits?: Partial<HttpLimits>) {
    this.limits = {
      maxHeaderBytes: limits && limits.maxHeaderBytes !== undefined ? limits.maxHeaderBytes : DEFAULT_LIMITS.maxHeaderBytes,
      maxHeaders: limits && limits.maxHeaders !== undefined ? limits.maxHeaders : DEFAULT_LIMITS.maxHeaders,
      maxBodyBytes: limits && limits.maxBodyBytes !== undefined ? limits.maxBodyBytes : DEFAULT_LIMITS.maxBodyBytes,
    };
  }

  /** True while a request has started arriving but is not complete. */
  get midRequest(): boolean {
    return this.pending !== undefined || this.buf.length > 0;
  }

  /**
   * The requests completed by these bytes, in order, and the refusal that stopped parsing, if
   * any (requests before a bad one are still returned; after it the parser takes nothing more).
   */
  push(bytes: Uint8Array): { requests: ParsedRequest[]; error?: HttpParseError } {
    if (this.failed) return { requests: [], error: new HttpParseError(400, 'E_HTTP_FAILED', 'the connection already sent a bad request') };
    this.buf = concat(this.buf, bytes);
    const out: ParsedRequest[] = [];
    try {
      for (;;) {
        if (!this.pending) {
          // Skip CRLFs before a request line (RFC 9112 2.2 allows one; we allow a few).
          let skip = 0;
          while (skip < this.buf.length && skip < 8 && (this.buf[skip] === 13 || this.buf[skip] === 10)) skip++;
          if (skip > 0) {
            this.buf = this.buf.subarray(skip);
            this.scanned = 0;
          }
          const end = headEnd(this.buf, this.scanned - 3);
          if (end < 0) {
            if (this.buf.length > this.limits.maxHeaderBytes) throw new HttpParseError(431, 'E_HTTP_HEADERS_TOO_LARGE', 'the request head exceeds ' + this.limits.maxHeaderBytes + ' bytes');
            this.scanned = this.buf.length;
            break;
          }
          if (end > this.limits.maxHeaderBytes) throw new HttpParseError(431, 'E_HTTP_HEADERS_TOO_LARGE', 'the request head exceeds ' + this.limits.maxHeaderBytes + ' bytes');
          const req = parseHead(latin1(this.buf, 0, end), this.limits);
          const cl = req.headers['content-length'];
          let length = 0;
          if (cl !== undefined) {
            if (!/^\d{1,15}$/.test(cl)) throw new HttpParseError(400, 'E_HTTP_CONTENT_LENGTH', 'Content-Length is not a number');
            length = parseInt(cl, 10);
            if (length > this.limits.maxBodyBytes) throw new HttpParseError(413, 'E_HTTP_BODY_TOO_LARGE', 'the body exceeds ' + this.limits.maxBodyBytes + ' bytes');
          }
          this.buf = this.buf.subarray(end);
          this.scanned = 0;
          this.pending = req;
          this.bodyLength = length;
        }
        if (this.buf.length < this.bodyLength) break;
        const req = this.pending;
        const body = new Uint8Array(this.bodyLength);
        body.set(this.buf.subarray(0, this.bodyLength));
        req.body = body;
        this.buf = this.buf.subarray(this.bodyLength);
        this.pending = undefined;
        this.bodyLength = 0;
        out.push(req);
      }
    } catch (e) {
      if (!(e instanceof HttpParseError)) throw e;
      this.failed = true;
      this.buf = new Uint8Array(0);
      return { requests: out, error: e };
    }
    // Keep the rest in a buffer of its own so the chunk it came in can be freed.
    if (this.buf.length > 0 && this.buf.byteOffset > 0) this.buf = copyOf(this.buf);
    return { requests: out };
  }
}

function copyOf(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length);
  out.set(b);
  return out;
}

const REASONS: Record<number, string> = {
  100: 'Continue', 200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 206: 'Partial Content',
  301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 304: 'Not Modified', 307: 'Temporary Redirect', 308: 'Permanent Redirect',
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout',
  409: 'Conflict', 411: 'Length Required', 413: 'Content Too Large', 415: 'Unsupported Media Type', 422: 'Unprocessable Content',
  429: 'Too Many Requests', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 501: 'Not Implemented',
  502: 'Bad Gateway', 503: 'Service Unavailable', 505: 'HTTP Version Not Supported',
};

export function reasonPhrase(status: number): string {
  return REASONS[status] || 'Unknown';
}
