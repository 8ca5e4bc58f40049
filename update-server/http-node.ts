/**
 * The HTTPS adapter: node:https with mutual TLS in front of the app. It translates a Node
 * request into an AppRequest (path, headers, body stream, what TLS learned about the client
 * certificate) and an AppResponse back, and it holds the line for the connection itself: TLS
 * settings, every phase's deadline, connection caps and the per-device rate limit
 * (limits.ts), and the access log (access-log.ts). Every decision about a request is the app's.
 *
 * Nothing a client sends may throw outside this file's error handling: a request target, a
 * header or a body that Node or the app cannot take ends as an HTTP error response, garbage
 * that is not HTTP ends as a closed connection, and the process goes on serving.
 *
 * TLS asks every client for a certificate and verifies it against the vendor CA, but does not
 * hang up on a missing or foreign one (rejectUnauthorized: false): the app refuses with a
 * typed error, and can still serve the dashboard to a browser on loopback.
 */
import { constants as cryptoConstants } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { routeOf, type AccessLog } from './access-log';
import { ServerError } from './errors';
import { errorResponse, type AppRequest, type AppResponse, type ClientCert } from './http';
import { AddressCounts, addressKey, deviceRateLimit, identityOf, serverLimits, TokenBuckets, type ServerLimits } from './limits';

export interface TlsMaterial {
  certPem: string;
  keyPem: string;
  /** The vendor CA: client certificates must chain to it. */
  caPem: string;
}

export interface Listening {
  server: Server;
  port: number;
  host: string;
  url: string;
  close(): Promise<void>;
}

export interface AppLike {
  handle(req: AppRequest): Promise<AppResponse>;
}

export interface ListenOptions {
  /** 0 picks a free port (tests). */
  port: number;
  host?: string;
  /** Overrides of DEFAULT_SERVER_LIMITS. */
  limits?: Partial<ServerLimits>;
  /** Where the one line per request goes (default: nowhere). */
  accessLog?: AccessLog;
  /** Told about what happened to a connection outside any request (a listener error). */
  onServerError?: (e: Error) => void;
}

/**
 * TLS 1.3, and TLS 1.2 with ECDHE key exchange and an AEAD cipher only: forward secrecy, no
 * CBC, no SHA-1 MAC (Mozilla's "intermediate" list minus the DHE suites).
 */
export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** Methods whose requests carry no body in this API; one that comes with a body is refused unread. */
const BODYLESS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE']);
const NO_CERT: ClientCert = { present: false, authorized: false, roles: [] };
const noop = () => undefined;

/**
 * What TLS learned about each connection's client certificate, described once per connection:
 * renegotiation is refused (SSL_OP_NO_RENEGOTIATION, disableRenegotiation()), so the peer a
 * connection authenticated in its handshake is the peer of every request it carries, and
 * getPeerCertificate() (a new object with the whole certificate, each call) need not run per request.
 */
const certOfSocket = new WeakMap<TLSSocket, ClientCert>();

/** For a request: its connection's handshake is done, so what it says is final. */
function clientCert(socket: TLSSocket): ClientCert {
  let c = certOfSocket.get(socket);
  if (!c) {
    c = describeClientCert(socket);
    certOfSocket.set(socket, c);
  }
  return c;
}

function describeClientCert(socket: TLSSocket): ClientCert {
  try {
    if (typeof socket.getPeerCertificate !== 'function') return NO_CERT;
    const peer = socket.getPeerCertificate() as PeerCertificate | Record<string, never> | null;
    if (!peer || Object.keys(peer).length === 0) return NO_CERT;
    const subject = ((peer as PeerCertificate).subject ?? {}) as unknown as Record<string, unknown>;
    const ou = subject.OU;
    const cn = subject.CN;
    const serial = (peer as PeerCertificate).serialNumber;
    return {
      present: true,
      authorized: socket.authorized === true,
      authorizationError: socket.authorizationError ? String(socket.authorizationError) : undefined,
      commonName: typeof cn === 'string' ? cn : undefined, // several CNs: ambiguous, treated as none
      roles: typeof ou === 'string' ? [ou] : Array.isArray(ou) ? ou.filter((v): v is string => typeof v === 'string') : [],
      serial: typeof serial === 'string' ? serial.toLowerCase() : undefined,
    };
  } catch {
    return NO_CERT; // a socket torn down meanwhile, or a certificate Node could not describe
  }
}

/** RFC 3986 pchar (unreserved, pct-encoded, sub-delims, ":", "@") and "/" for the path; the query also takes "?". */
const ORIGIN_FORM = /^(?:\/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*)+(?:\?(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?$/;

/**
 * The path and query of a request target (RFC 9112 §3.2): origin-form (`/path?query`, only the
 * characters RFC 3986 allows there) or absolute-form (`https://host/path?query`, host ignored).
 * Anything else is a 400: `*`, an authority, a URL that does not parse, and a path starting
 * with `//`, which URL parsers read as a host. Dot segments are removed against a fixed
 * origin, so nothing the client sends can become a host.
 */
export function parseTarget(target: string): { path: string; query: URLSearchParams } {
  let url: URL;
  try {
    if (target.startsWith('/') && !target.startsWith('//') && ORIGIN_FORM.test(target)) url = new URL('https://server.invalid' + target);
    else if (/^https?:\/\/[^/?#]*(\/[^/]|\/?$|\?)/i.test(target) && !/[^\x21-\x7e]/.test(target)) url = new URL(target);
    else throw new Error('not origin-form or absolute-form');
  } catch (e) {
    throw new ServerError('E_BAD_REQUEST', 'the request target is not a path (origin-form or an http(s) URL)', e);
  }
  return { path: url.pathname, query: url.searchParams };
}

function headerLength(req: IncomingMessage): number | null {
  const v = req.headers['content-length'];
  return typeof v === 'string' && /^\d{1,16}$/.test(v) ? Number(v) : null;
}

function hasBody(req: IncomingMessage): boolean {
  return (headerLength(req) ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}

/**
 * The request body as the app reads it, with a deadline like Apache mod_reqtimeout's
 * `body=…,MinRate=…`: the first bytes within bodyGraceMs, then one more second for every
 * bodyMinBytesPerS bytes. A body that falls behind closes the connection. The app may stop
 * reading early (a refusal): that neither destroys the request nor reads the rest; the
 * response then says `Connection: close`.
 */
function guardedBody(req: IncomingMessage, limits: ServerLimits): AsyncIterable<Uint8Array> {
  if (!hasBody(req) || req.complete) return req.iterator({ destroyOnReturn: false }) as AsyncIterable<Uint8Array>;
  const started = performance.now();
  let received = 0;
  let timer: NodeJS.Timeout | undefined;
  const check = () => {
    if (req.complete || req.socket.destroyed) return;
    const due = limits.bodyGraceMs + (received / limits.bodyMinBytesPerS) * 1000 - (performance.now() - started);
    if (due <= 0) req.socket.destroy();
    else timer = setTimeout(check, Math.ceil(due));
  };
  timer = setTimeout(check, limits.bodyGraceMs);
  // The socket outlives the request on keep-alive: take the listener off again, or a
  // connection carrying many requests with bodies would pile them up.
  const socket = req.socket;
  const stop = () => {
    clearTimeout(timer);
    socket.off('close', stop);
  };
  req.once('end', stop);
  req.once('close', stop);
  socket.once('close', stop);
  const inner = req.iterator({ destroyOnReturn: false }) as AsyncIterator<Uint8Array>;
  return {
    [Symbol.asyncIterator]: () => ({
      next: async () => {
        const r = await inner.next();
        if (!r.done) received += r.value.length;
        return r;
      },
      return: async () => {
        await inner.return?.();
        return { done: true as const, value: undefined };
      },
    }),
  };
}

/**
 * Translate; a target, header or length the server will not take throws a ServerError (a 400
 * or 413 answered before the app and before the body is read).
 */
export function toAppRequest(req: IncomingMessage, client: ClientCert, limits: ServerLimits): AppRequest {
  const method = req.method ?? '';
  const { path, query } = parseTarget(req.url ?? '');
  if (BODYLESS.has(method) && hasBody(req)) throw new ServerError('E_BAD_REQUEST', `a ${method} request takes no body`);
  const length = headerLength(req);
  if (length !== null && length > limits.maxBodyBytes) {
    throw new ServerError('E_TOO_LARGE', `request body of ${length} bytes exceeds the server's ${limits.maxBodyBytes}-byte limit`);
  }
  const headers: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : v;
  return {
    method, path, query, headers, client,
    body: guardedBody(req, limits),
    remoteAddress: req.socket.remoteAddress ?? '',
  };
}

/** Resolves when `res` can take more, or false when the reader made no progress for `stallMs`. */
function drained(res: ServerResponse, stallMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    const timer = setTimeout(() => done(false), stallMs);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

function isLocalhostName(host: string | undefined): boolean {
  const name = (host ?? '').replace(/:\d+$/, '').toLowerCase();
  return name === 'localhost' || name.endsWith('.localhost');
}

function destroyStream(body: AppResponse['body']): void {
  if (body && typeof body === 'object' && !(body instanceof Uint8Array)) (body.stream as { destroy?: () => void }).destroy?.();
}

export async function sendAppResponse(req: IncomingMessage, res: ServerResponse, r: AppResponse,
  limits: ServerLimits = serverLimits(), sent: { bytes: number } = { bytes: 0 }): Promise<void> {
  const head = req.method === 'HEAD';
  const body = r.body;
  if (res.headersSent || res.destroyed) {
    destroyStream(body);
    return;
  }
  const headers: Record<string, string | number> = { ...r.headers };
  // Answered before the whole body arrived (a refusal, a request that takes none): do not read the rest.
  if (!req.complete) headers.connection = 'close';
  if (body === undefined) headers['content-length'] = 0;
  else if (typeof body === 'string') headers['content-length'] = Buffer.byteLength(body);
  else if (body instanceof Uint8Array) headers['content-length'] = body.length;
  else headers['content-length'] = body.length;
  // HSTS for what browsers see (the dashboard). Browsers ignore it for IP literals; a
  // `localhost` name is left alone so that a year of https-only does not land on every
  // development server of the admin's machine.
  const type = String(r.headers['content-type'] ?? '');
  if (limits.hstsMaxAgeS > 0 && type.startsWith('text/html') && !isLocalhostName(req.headers.host)) {
    headers['strict-transport-security'] = `max-age=${limits.hstsMaxAgeS}`;
  }
  res.writeHead(r.status, headers);
  if (head || body === undefined) {
    res.end();
    destroyStream(body);
    return;
  }
  if (typeof body === 'string' || body instanceof Uint8Array) {
    const n = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    res.end(body, () => (sent.bytes += n));
    return;
  }
  const stream = body.stream as AsyncIterable<Uint8Array> & { destroy?: () => void };
  let stalled = false;
  for await (const chunk of stream) {
    if (res.destroyed) break;
    const more = res.write(chunk);
    sent.bytes += chunk.length;
    // A reader that stops reading holds a connection and buffers: it gets writeStallMs.
    if (!more && !(await drained(res, limits.writeStallMs))) {
      stalled = true;
      break;
    }
  }
  // Leaving the loop early destroyed the stream (for-await calls its return()).
  if (res.destroyed) return;
  if (stalled || sent.bytes !== body.length) {
    res.destroy(); // never end a response that is not exactly its Content-Length
    return;
  }
  res.end();
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };

/** Serve `app` over HTTPS with mutual TLS. */
export function listenHttps(app: AppLike, tls: TlsMaterial, opts: ListenOptions): Promise<Listening> {
  const limits = serverLimits(opts.limits);
  const log = opts.accessLog;
  const rateLimit = deviceRateLimit(new TokenBuckets(limits.deviceBurst, limits.deviceRatePerS, limits.deviceBuckets));
  const perAddress = new AddressCounts();

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const t0 = performance.now();
    const time = new Date().toISOString();
    const socket = req.socket as TLSSocket;
    const client = clientCert(socket);
    const sent = { bytes: 0 };
    req.on('error', noop);
    res.on('error', noop);
    if (log) {
      res.once('close', () => {
        try {
          log.write({
            time, identity: identityOf(client), method: req.method ?? '', route: routeOf(req.url ?? ''),
            status: res.headersSent ? res.statusCode : 0, bytes: sent.bytes, ms: performance.now() - t0,
            client: socket.remoteAddress ?? '', ...(res.writableFinished ? {} : { aborted: true as const }),
          });
        } catch {
          // the log is never a reason to fail a request
        }
      });
    }
    let reply: Promise<AppResponse>;
    try {
      const appReq = toAppRequest(req, client, limits);
      const refused = rateLimit(appReq);
      reply = refused ? Promise.resolve(refused) : app.handle(appReq);
    } catch (e) {
      reply = Promise.resolve(errorResponse(e));
    }
    reply
      .catch((e: unknown) => errorResponse(e))
      .then((r) => sendAppResponse(req, res, r, limits, sent))
      .catch(() => res.destroy());
  };

  const server = createServer({
    cert: tls.certPem,
    key: tls.keyPem,
    ca: tls.caPem,
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
    ciphers: TLS_CIPHERS,
    honorCipherOrder: true,
    // Client-initiated renegotiation costs the server a handshake per request and is never
    // needed here: OpenSSL refuses it, and disableRenegotiation() below closes the connection.
    secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
    handshakeTimeout: limits.handshakeTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: 0, // bodies have their own rate-based deadline (guardedBody); uploads may be large
    connectionsCheckingInterval: limits.checkIntervalMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    maxHeaderSize: limits.maxHeaderBytes,
  }, onRequest);
  server.maxConnections = limits.maxConnections;
  server.maxRequestsPerSocket = limits.maxRequestsPerSocket;
  server.setTimeout(limits.idleTimeoutMs);

  // Before TLS: the per-address cap. The raw socket is what the TLS socket wraps.
  server.on('connection', (raw: Socket) => {
    try {
      const key = addressKey(raw.remoteAddress);
      if (!key || !perAddress.open(key, limits.maxConnectionsPerAddress)) {
        raw.destroy();
        return;
      }
      raw.once('close', () => perAddress.close(key));
    } catch {
      raw.destroy();
    }
  });
  server.on('secureConnection', (s: TLSSocket) => {
    try {
      s.disableRenegotiation();
    } catch {
      s.destroy();
    }
  });
  server.on('tlsClientError', (_e, s: TLSSocket) => s.destroy());
  // Something that is not a request Node could parse (or a deadline before one): answer 400,
  // 408 or 431 when nothing else is being written on this connection, then close it.
  server.on('clientError', (e: NodeJS.ErrnoException, socket: Socket) => {
    try {
      const code = String(e?.code ?? '');
      const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : code.startsWith('HPE_') ? 400 : 0;
      const busy = (socket as Socket & { _httpMessage?: unknown })._httpMessage;
      if (status && socket.writable && !busy) {
        socket.end(`HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
        const unread = setTimeout(() => socket.destroy(), limits.writeStallMs); // a peer that does not read even that
        socket.once('close', () => clearTimeout(unread));
        log?.write({
          time: new Date().toISOString(), identity: identityOf(describeClientCert(socket as TLSSocket)), method: '', route: '',
          status, bytes: 0, ms: 0, client: socket.remoteAddress ?? '',
        });
      } else {
        socket.destroy();
      }
    } catch {
      socket.destroy();
    }
  });
  const host = opts.host ?? '127.0.0.1';
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      // From here on a listener error (EMFILE on accept, …) is reported, never thrown.
      server.on('error', (e) => opts.onServerError?.(e));
      const port = (server.address() as AddressInfo).port;
      const shown = host.includes(':') ? `[${host}]` : host;
      resolve({
        server, port, host, url: `https://${shown}:${port}`,
        close: () => new Promise<void>((res) => {
          server.close(() => res());
          server.closeAllConnections();
        }),
      });
    });
  });
}
