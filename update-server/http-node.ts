/**
 * The HTTPS adapter: node:https with mutual TLS in front of the app. It only translates a
 * Node request into an AppRequest (path, headers, body stream, what TLS learned about the
 * client certificate) and an AppResponse back; every decision is the app's.
 *
 * TLS asks every client for a certificate and verifies it against the vendor CA, but does not
 * hang up on a missing or foreign one (rejectUnauthorized: false): the app refuses with a
 * typed error, and can still serve the dashboard to a browser on loopback.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { AppRequest, AppResponse, ClientCert } from './http';

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

function clientCert(socket: TLSSocket): ClientCert {
  const peer = socket.getPeerCertificate() as PeerCertificate | Record<string, never>;
  if (!peer || Object.keys(peer).length === 0) return { present: false, authorized: false, roles: [] };
  const subject = (peer as PeerCertificate).subject ?? {};
  const ou = (subject as unknown as Record<string, string | string[] | undefined>).OU;
  const cn = (subject as unknown as Record<string, string | string[] | undefined>).CN;
  return {
    present: true,
    authorized: socket.authorized,
    authorizationError: socket.authorizationError ? String(socket.authorizationError) : undefined,
    commonName: Array.isArray(cn) ? undefined : cn, // several CNs: ambiguous, treated as none
    roles: ou === undefined ? [] : Array.isArray(ou) ? ou : [ou],
    serial: (peer as PeerCertificate).serialNumber?.toLowerCase(),
  };
}

export function toAppRequest(req: IncomingMessage): AppRequest {
  const socket = req.socket as TLSSocket;
  const url = new URL(req.url ?? '/', 'https://server.invalid');
  const headers: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : v;
  return {
    method: req.method ?? 'GET',
    path: url.pathname,
    query: url.searchParams,
    headers,
    body: req,
    client: typeof socket.getPeerCertificate === 'function' ? clientCert(socket) : { present: false, authorized: false, roles: [] },
    remoteAddress: socket.remoteAddress ?? '',
  };
}

export async function sendAppResponse(req: IncomingMessage, res: ServerResponse, r: AppResponse): Promise<void> {
  const head = req.method === 'HEAD';
  const body = r.body;
  const headers: Record<string, string | number> = { ...r.headers };
  // Refused before its body was read (an upload without a certificate): do not read the rest.
  if (!req.complete && r.status >= 400) headers.connection = 'close';
  if (body === undefined) headers['content-length'] = 0;
  else if (typeof body === 'string') headers['content-length'] = Buffer.byteLength(body);
  else if (body instanceof Uint8Array) headers['content-length'] = body.length;
  else headers['content-length'] = body.length;
  res.writeHead(r.status, headers);
  if (head || body === undefined) {
    res.end();
    if (body && typeof body === 'object' && !(body instanceof Uint8Array)) {
      const it = body.stream as AsyncIterable<Uint8Array> & { destroy?: () => void };
      it.destroy?.();
    }
    return;
  }
  if (typeof body === 'string' || body instanceof Uint8Array) {
    res.end(body);
    return;
  }
  for await (const chunk of body.stream) {
    if (!res.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    }
    if (res.destroyed) {
      (body.stream as { destroy?: () => void }).destroy?.();
      return;
    }
  }
  res.end();
}

/** Serve `app` over HTTPS with mutual TLS. Port 0 picks a free port (tests). */
export function listenHttps(app: AppLike, tls: TlsMaterial, opts: { port: number; host?: string }): Promise<Listening> {
  const server = createServer({
    cert: tls.certPem,
    key: tls.keyPem,
    ca: tls.caPem,
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
    keepAliveTimeout: 30_000,
  }, (req, res) => {
    app.handle(toAppRequest(req)).then(
      (r) => sendAppResponse(req, res, r),
      () => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":{"code":"E_INTERNAL"}}');
      },
    ).catch(() => res.destroy());
  });
  // An app error answered before the whole body arrived: drop the rest rather than stall.
  server.on('clientError', (_e, socket) => socket.destroy());
  const host = opts.host ?? '127.0.0.1';
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
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
