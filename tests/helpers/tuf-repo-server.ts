/**
 * A tiny static server for a `TestRepo` on loopback (HTTP, or HTTPS with client certificates),
 * plus just enough of the update server's API (check-in, report) to drive the agent — and
 * controls to misbehave per path: serve other bytes or a status, trickle, cut the connection,
 * stream without end, ignore Range. Not the real update server: the OTA tests must not wait
 * for it, and the real one should never misbehave on request.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Offer } from '../../sdk/ota/agent';
import type { TestRepo } from './tuf-repo';

export interface Behaviour {
  /** Answer with this status and no body. */
  status?: number;
  /** Serve these bytes instead of the repository's. */
  body?: Uint8Array;
  /** Send `bytes` every `intervalMs` (slow retrieval). */
  trickle?: { bytes: number; intervalMs: number };
  /** Send this many body bytes, then destroy the socket (Content-Length still says all). */
  cutAfter?: number;
  /** Stream without end and without Content-Length. */
  endless?: boolean;
  /** Omit Content-Length (chunked), so only the streaming cap can stop an oversized body. */
  noLength?: boolean;
  /** Answer Range requests with the whole body (200). */
  ignoreRange?: boolean;
  /** Apply this many times, then serve normally (default: every time). */
  times?: number;
}

export interface RequestRecord {
  method: string;
  path: string;
  range?: string;
  /** CN of the client certificate (HTTPS with requestCert). */
  clientCn?: string;
}

export interface TlsServerOptions {
  key: string;
  cert: string;
  /** Require client certificates issued by this CA. */
  ca: string;
}

type OfferFn = (body: Record<string, unknown>, req: RequestRecord) => Offer | null;

export class RepoServer {
  readonly requests: RequestRecord[] = [];
  readonly checkins: Record<string, unknown>[] = [];
  readonly reports: Record<string, unknown>[] = [];
  /** What /api/v1/checkin answers. */
  offer: Offer | null | OfferFn = null;
  url = '';
  private readonly behaviours = new Map<string, Behaviour[]>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private server!: http.Server;

  private constructor(private readonly repo: TestRepo) {}

  static async start(repo: TestRepo, tls?: TlsServerOptions): Promise<RepoServer> {
    const s = new RepoServer(repo);
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => s.handle(req, res);
    s.server = tls
      ? https.createServer({ key: tls.key, cert: tls.cert, ca: tls.ca, requestCert: true, rejectUnauthorized: true }, handler)
      : http.createServer(handler);
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    const port = (s.server.address() as AddressInfo).port;
    s.url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    return s;
  }

  /**
   * Misbehave on one URL path (e.g. `/tuf/metadata/timestamp.json`). Several behaviours run in
   * order, each for its `times` requests (the last one, or one without `times`, stays).
   */
  behave(path: string, ...bs: Behaviour[]): void {
    this.behaviours.set(path, bs.map((b) => ({ ...b })));
  }

  private next(path: string): Behaviour | undefined {
    const q = this.behaviours.get(path);
    if (!q || q.length === 0) return undefined;
    const b = q[0];
    if (b.times !== undefined) {
      b.times--;
      if (b.times <= 0) q.shift();
    }
    return b;
  }

  normal(path?: string): void {
    if (path) this.behaviours.delete(path);
    else this.behaviours.clear();
  }

  /** Requests for target files (to prove a refusal happened before any download). */
  targetRequests(): RequestRecord[] {
    return this.requests.filter((r) => r.path.startsWith('/tuf/targets/'));
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const sock = req.socket as import('node:tls').TLSSocket;
    const cert = typeof sock.getPeerCertificate === 'function' ? sock.getPeerCertificate() : undefined;
    const rec: RequestRecord = { method: req.method ?? 'GET', path, range: req.headers.range, clientCn: cert?.subject?.CN as string | undefined };
    this.requests.push(rec);
    if (req.method === 'POST') return this.api(req, res, path, rec);
    let body: Uint8Array | undefined;
    if (path.startsWith('/tuf/metadata/')) body = this.repo.files.get('metadata/' + path.slice('/tuf/metadata/'.length));
    else if (path.startsWith('/tuf/targets/')) body = this.repo.files.get('targets/' + path.slice('/tuf/targets/'.length));
    const b = this.next(path);
    if (b?.status) {
      res.writeHead(b.status).end();
      return;
    }
    if (b?.body) body = b.body;
    if (b?.endless) return this.endless(res);
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    let status = 200;
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' };
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m && !b?.ignoreRange) {
      const from = Number(m[1]);
      if (from >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      headers['content-range'] = `bytes ${from}-${body.length - 1}/${body.length}`;
      status = 206;
      body = body.subarray(from);
    }
    if (!b?.noLength) headers['content-length'] = String(body.length);
    res.writeHead(status, headers);
    if (b?.cutAfter !== undefined) {
      res.write(body.subarray(0, b.cutAfter), () => res.socket?.destroy());
      return;
    }
    if (b?.trickle) return this.trickle(res, body, b.trickle);
    res.end(body);
  }

  private trickle(res: http.ServerResponse, body: Uint8Array, t: { bytes: number; intervalMs: number }): void {
    let off = 0;
    const timer = setInterval(() => {
      if (res.destroyed || off >= body.length) {
        clearInterval(timer);
        this.timers.delete(timer);
        if (!res.destroyed) res.end();
        return;
      }
      res.write(body.subarray(off, off + t.bytes));
      off += t.bytes;
    }, t.intervalMs);
    this.timers.add(timer);
    res.on('close', () => {
      clearInterval(timer);
      this.timers.delete(timer);
    });
  }

  private endless(res: http.ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const chunk = new Uint8Array(16 * 1024).fill(0x7b);
    const pump = (): void => {
      while (!res.destroyed && res.write(chunk)) {
        // keep writing until the socket pushes back
      }
      if (!res.destroyed) res.once('drain', pump);
    };
    pump();
  }

  private api(req: http.IncomingMessage, res: http.ServerResponse, path: string, rec: RequestRecord): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400).end();
        return;
      }
      const b = this.next(path);
      if (b?.status) {
        res.writeHead(b.status).end();
        return;
      }
      let answer: unknown;
      if (path === '/api/v1/checkin') {
        this.checkins.push(body);
        answer = { offer: typeof this.offer === 'function' ? this.offer(body, rec) : this.offer };
      } else if (path === '/api/v1/report') {
        this.reports.push(body);
        answer = { ok: true };
      } else {
        res.writeHead(404).end();
        return;
      }
      const out = Buffer.from(JSON.stringify(answer));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(out.length) }).end(out);
    });
  }
}
