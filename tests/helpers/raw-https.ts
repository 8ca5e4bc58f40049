/**
 * Raw bytes over TLS (or plain TCP) to a real server on loopback: what a misbehaving client
 * sends, not what node:https would let a well-behaved one send. Used by the server hardening
 * tests, the HTTP fuzz test and the attack benchmark.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export interface ClientIdentity {
  certPem: string;
  keyPem: string;
}

export interface ConnectOptions {
  id?: ClientIdentity | null;
  /** Source address (any of 127/8 on Linux), so one test can be several clients. */
  localAddress?: string;
  host?: string;
  /** Extra node:tls options (ciphers, maxVersion). */
  tls?: Record<string, unknown>;
}

/** A TLS connection with the handshake done (rejects when the server hangs up first). */
export function connectTls(port: number, o: ConnectOptions = {}): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const tcp = netConnect({ port, host: o.host ?? '127.0.0.1', localAddress: o.localAddress });
    tcp.on('error', () => undefined); // reported by the TLS socket
    const s = tlsConnect({
      socket: tcp, rejectUnauthorized: false, cert: o.id?.certPem, key: o.id?.keyPem, servername: 'localhost', ...o.tls,
    }, () => resolve(s));
    s.once('error', reject);
    s.once('close', () => reject(new Error('closed during the handshake')));
  });
}

/** A plain TCP connection (nothing sent). */
export function connectTcp(port: number, o: ConnectOptions = {}): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ port, host: o.host ?? '127.0.0.1', localAddress: o.localAddress }, () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * Complete HTTP/1.1 responses at the start of `buf` (Content-Length framing, which is all this
 * server sends; 1xx interim responses are skipped), and what is left. `heads[i]` says whether
 * the i-th response answers a HEAD (no body whatever its Content-Length).
 */
export function parseResponses(buf: Buffer, heads: boolean[] = [], already = 0): { responses: RawResponse[]; rest: Buffer } {
  const responses: RawResponse[] = [];
  let off = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const lines = buf.subarray(off, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) throw new Error('not an HTTP response: ' + JSON.stringify(lines[0].slice(0, 80)));
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
    }
    const status = Number(m[1]);
    if (status >= 100 && status < 200) {
      off = end + 4;
      continue;
    }
    const isHead = heads[already + responses.length] === true;
    if (!isHead && /chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const body = dechunk(buf, end + 4);
      if (!body) break;
      responses.push({ status, headers, body: body.body });
      off = body.next;
      continue;
    }
    const len = isHead ? 0 : Number(headers['content-length'] ?? 0);
    if (buf.length < end + 4 + len) break;
    responses.push({ status, headers, body: Buffer.from(buf.subarray(end + 4, end + 4 + len)) });
    off = end + 4 + len;
  }
  return { responses, rest: buf.subarray(off) };
}

/** A chunked body starting at `off` (Node's own 417 answers use it), or null when it is not all there yet. */
function dechunk(buf: Buffer, off: number): { body: Buffer; next: number } | null {
  const parts: Buffer[] = [];
  for (;;) {
    const nl = buf.indexOf('\r\n', off);
    if (nl < 0) return null;
    const size = parseInt(buf.subarray(off, nl).toString('latin1'), 16);
    if (!Number.isFinite(size)) throw new Error('bad chunk size in a response');
    if (size === 0) {
      const endOfTrailers = buf.indexOf('\r\n\r\n', nl);
      if (endOfTrailers < 0) return null;
      return { body: Buffer.concat(parts), next: endOfTrailers + 4 };
    }
    if (buf.length < nl + 2 + size + 2) return null;
    parts.push(buf.subarray(nl + 2, nl + 2 + size));
    off = nl + 2 + size + 2;
  }
}

export interface Exchange {
  responses: RawResponse[];
  /** The server closed (or reset) the connection. */
  closed: boolean;
  /** Neither all answers nor a close came within the bound: a hang. */
  hung: boolean;
}

/**
 * Send `bytes` on `socket` and collect responses until `expect` of them came (then close it
 * ourselves), or the server closed the connection, or `boundMs` passed (a hang).
 */
export function exchangeOn(socket: Socket, bytes: Buffer | string, expect: number, o: { heads?: boolean[]; boundMs?: number; keepOpen?: boolean } = {}): Promise<Exchange> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    const responses: RawResponse[] = [];
    let settled = false;
    const finish = (closed: boolean, hung = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', onEnd);
      socket.removeListener('close', onEnd);
      if (!o.keepOpen || closed || hung) socket.destroy();
      resolve({ responses, closed, hung });
    };
    const timer = setTimeout(() => finish(false, true), o.boundMs ?? 20_000);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      try {
        const r = parseResponses(buf, o.heads, responses.length);
        responses.push(...r.responses);
        buf = r.rest;
      } catch {
        buf = Buffer.alloc(0);
      }
      if (responses.length >= expect) finish(false);
    };
    const onEnd = () => finish(true);
    socket.on('data', onData);
    socket.on('error', onEnd);
    socket.on('close', onEnd);
    if (socket.destroyed) finish(true);
    else socket.write(bytes);
  });
}

/** Connect, send, collect (see exchangeOn); a handshake the server refused counts as closed. */
export async function exchange(port: number, bytes: Buffer | string, expect = 1, o: ConnectOptions & { heads?: boolean[]; boundMs?: number } = {}): Promise<Exchange> {
  let s: TLSSocket;
  try {
    s = await connectTls(port, o);
  } catch {
    return { responses: [], closed: true, hung: false };
  }
  return exchangeOn(s, bytes, expect, o);
}

/**
 * Whether the server closes `socket` (we send nothing more and never close it ourselves)
 * before `boundMs`: a generous bound well above the deadline under test, never a timing claim.
 */
export function closedByServer(socket: Socket, boundMs = 20_000): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(true);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, boundMs);
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    socket.once('close', done);
    socket.once('end', done);
    socket.on('error', () => undefined);
    socket.resume();
  });
}
