/**
 * The update server as a function from request to response (docs/ota-protocol.md §2). It
 * never listens: `http-node.ts` serves it over HTTPS with mutual TLS, and tests may call
 * `handle` directly. Each route: authenticate, parse, call one service, format.
 */
import type { FitVerifyKey } from '../sdk/fit/fit-verify';
import type { Signer } from '../sdk/ota/metadata';
import { authenticate, identify, isLoopback, refuseRevoked, requireRole, type Caller, type CallerRole } from './auth';
import { DASHBOARD_CSP, renderDashboard } from './dashboard';
import { ServerError } from './errors';
import { Fleet } from './fleet';
import { errorResponse, json, readBody, readJson, type AppRequest, type AppResponse } from './http';
import { Metrics, renderMetrics } from './metrics';
import { Repository } from './repository';
import { Rollouts } from './rollouts';
import type { AuditAction, Storage } from './storage';

export interface UpdateServerOptions {
  storage: Storage;
  /** root.json as `signet keys init` wrote it (the trust anchor of a fresh repository). */
  rootBytes: Uint8Array;
  snapshotSigners: Signer[];
  timestampSigners: Signer[];
  /** Unix seconds; tests pass a fake clock. */
  clock?: () => number;
  /**
   * Serve /dashboard and /metrics to loopback clients without a certificate (default false:
   * any reverse proxy or socat on the same host would pass that exemption on to the network).
   */
  openLocal?: boolean;
  /** Unreferenced blobs younger than this are kept (an upload waiting for its publish). Default 1 h. */
  blobGraceS?: number;
  /** How often tick() collects unreferenced blobs (seconds). Default 1 h. */
  blobCollectEveryS?: number;
  snapshotExpiresS?: number;
  timestampExpiresS?: number;
  limits?: Partial<Limits>;
  /** The FIT public key(s) U-Boot holds (fit-pub.dtb): boot images are verified against them; none: refused. */
  fitKeys?: readonly FitVerifyKey[];
}

export interface Limits {
  json: number;
  metadata: number;
  target: number;
}

export const DEFAULT_LIMITS: Limits = {
  json: 64 * 1024,
  metadata: 16 * 1024 * 1024,
  target: 512 * 1024 * 1024,
};

export interface UpdateServer {
  handle(req: AppRequest): Promise<AppResponse>;
  /** Periodic work: re-sign the timestamp before it expires; collect unreferenced blobs hourly. */
  tick(): Promise<void>;
  /** Remove blobs no metadata names that are past their grace period (also run after each publish). */
  collectBlobs(): Promise<{ sha256: string; length: number }[]>;
  readonly repository: Repository;
  readonly fleet: Fleet;
  readonly rollouts: Rollouts;
  readonly metrics: Metrics;
  readonly storage: Storage;
}

export const DEFAULT_BLOB_GRACE_S = 3600;

const SHA256 = /^[0-9a-f]{64}$/;

type Handler = (req: AppRequest, params: string[]) => Promise<AppResponse>;
interface Route {
  method: string;
  pattern: RegExp;
  who: CallerRole | 'any' | 'local-or-admin' | 'public';
  /** Admin writes: the one media type the body must have (default application/json). */
  accepts?: string;
  /**
   * The route refuses a revoked caller itself, from its own first read and before it reads the
   * body or writes anything (the check-in: `Storage.checkinState` reads the revocation with
   * the device, one round trip instead of two). Only the certificate is checked before `run`.
   */
  refusesRevoked?: true;
  run: Handler;
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);

/**
 * Cross-site request forgery: an admin's browser holding an admin certificate must not let
 * another site's page (a form POST, a no-cors fetch) drive an admin action. Browsers say where
 * a request comes from in Sec-Fetch-Site (allowed: `same-origin`, and `none` for what the
 * user typed) and Origin (when sent, it must be this server's own https origin, as the
 * browser reached it in Host). Clients that are not browsers (the signet CLI) send neither.
 */
export function refuseCrossSite(headers: AppRequest['headers']): void {
  const site = headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    throw new ServerError('E_CROSS_SITE', `refused an admin write from another site (Sec-Fetch-Site: ${site.slice(0, 40)})`);
  }
  const origin = headers.origin;
  if (origin === undefined) return;
  const own = originOf('https://' + (headers.host ?? ''));
  if (own === null || originOf(origin) !== own) {
    throw new ServerError('E_CROSS_SITE', `refused an admin write from origin ${origin.slice(0, 100)}`);
  }
}

function originOf(u: string): string | null {
  try {
    const url = new URL(u);
    return url.origin === 'null' ? null : url.origin;
  } catch {
    return null;
  }
}

/** The body's media type must be `want` (parameters such as charset=utf-8 aside). */
export function requireMediaType(headers: AppRequest['headers'], want: string): void {
  const got = (headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (got !== want) {
    throw new ServerError('E_MEDIA_TYPE', `this admin endpoint takes Content-Type: ${want}, not ${got ? JSON.stringify(got.slice(0, 80)) : 'none'}`);
  }
}

export async function createUpdateServer(o: UpdateServerOptions): Promise<UpdateServer> {
  const clock = o.clock ?? (() => Math.floor(Date.now() / 1000));
  const limits = { ...DEFAULT_LIMITS, ...o.limits };
  const storage = o.storage;
  const metrics = new Metrics();
  const repository = new Repository({
    storage, snapshotSigners: o.snapshotSigners, timestampSigners: o.timestampSigners, clock,
    snapshotExpiresS: o.snapshotExpiresS, timestampExpiresS: o.timestampExpiresS, fitKeys: o.fitKeys,
  });
  await repository.init(o.rootBytes);
  const fleet = new Fleet(storage, repository, metrics, clock);
  const rollouts = new Rollouts(storage, repository, clock);
  const openLocal = o.openLocal ?? false;
  const blobGraceS = o.blobGraceS ?? DEFAULT_BLOB_GRACE_S;
  const collectEveryS = o.blobCollectEveryS ?? 3600;
  let lastCollect = 0;

  /** One audit record per admin action, written once the action succeeded. */
  const audit = (req: AppRequest, action: AuditAction, subject: string, detail: Record<string, unknown> = {}) =>
    storage.audit({ at: clock(), actor: (req as Authed).caller.id, action, subject, detail });

  /** Remove blobs no metadata names, past their grace period (each removal is audited). */
  const collectBlobs = async () => {
    const removed = await repository.collectBlobs(blobGraceS);
    for (const b of removed) await storage.audit({ at: clock(), actor: 'server', action: 'blob.collect', subject: b.sha256, detail: { length: b.length } });
    metrics.blobsCollected += removed.length;
    return removed;
  };

  const metadataFile: Handler = async (req, [file]) => {
    const bytes = await repository.metadataFile(file);
    if (!bytes) throw new ServerError('E_NOT_FOUND', 'no metadata ' + file);
    // A HEAD moves no bytes: it is not a download.
    if (req.method !== 'HEAD') {
      metrics.downloads.metadata++;
      metrics.downloadBytes.metadata += bytes.length;
    }
    return {
      status: 200,
      headers: { 'content-type': 'application/json', 'cache-control': file === 'timestamp.json' ? 'no-cache' : 'public, max-age=3600' },
      body: bytes,
    };
  };

  const targetFile: Handler = async (req, [path]) => {
    const t = await repository.targetFile(path);
    const st = t ? await storage.blobs.stat(t.sha256) : null;
    if (!t || !st) throw new ServerError('E_NOT_FOUND', 'no target ' + path);
    const range = parseRange(req.headers.range, st.length);
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream', 'accept-ranges': 'bytes', etag: '"' + t.sha256 + '"',
      'cache-control': 'public, max-age=31536000, immutable',
    };
    if (range === 'unsatisfiable') {
      return { status: 416, headers: { ...headers, 'content-range': `bytes */${st.length}` } };
    }
    // An If-Range that does not match means the client's partial copy is of other bytes.
    const useRange = range && (!req.headers['if-range'] || req.headers['if-range'] === headers.etag);
    const [start, end] = useRange ? [range.start, range.end] : [0, st.length - 1];
    const length = st.length === 0 ? 0 : end - start + 1;
    if (req.method !== 'HEAD') {
      metrics.downloads.target++;
      metrics.downloadBytes.target += length;
    }
    if (useRange) headers['content-range'] = `bytes ${start}-${end}/${st.length}`;
    return {
      status: useRange ? 206 : 200,
      headers,
      body: length === 0 ? new Uint8Array(0) : { stream: storage.blobs.read(t.sha256, start, end), length },
    };
  };

  const routes: Route[] = [
    { method: 'GET', pattern: /^\/healthz$/, who: 'public', run: async () => json(200, { ok: true }) },
    { method: 'GET', pattern: /^\/tuf\/metadata\/([A-Za-z0-9.]{1,40})$/, who: 'any', run: metadataFile },
    { method: 'GET', pattern: /^\/tuf\/targets\/([A-Za-z0-9._\/+-]{1,400})$/, who: 'any', run: targetFile },
    {
      method: 'POST', pattern: /^\/api\/v1\/checkin$/, who: 'device', refusesRevoked: true,
      run: async (req) => json(200, await fleet.checkin((req as Authed).caller, () => readJson(req.body, limits.json))),
    },
    {
      method: 'POST', pattern: /^\/api\/v1\/report$/, who: 'device',
      run: async (req) => {
        const r = await fleet.report((req as Authed).caller, await readJson(req.body, limits.json));
        return json(200, { ok: true, rollout: { id: r.rollout.id, state: r.rollout.state } });
      },
    },
    {
      method: 'GET', pattern: /^\/api\/v1\/targets$/, who: 'admin',
      run: async () => {
        const t = await repository.currentTargets();
        return json(200, { root: repository.trustedRoot().version, targets: t ? JSON.parse(Buffer.from(t.bytes).toString('utf8')) : null });
      },
    },
    {
      method: 'PUT', pattern: /^\/api\/v1\/blobs\/([0-9a-f]{64})$/, who: 'admin', accepts: 'application/octet-stream',
      run: async (req, [sha]) => {
        const len = Number(req.headers['content-length']);
        if (!SHA256.test(sha)) throw new ServerError('E_BAD_REQUEST', 'not a SHA-256');
        if (!Number.isInteger(len) || len < 0) throw new ServerError('E_BAD_REQUEST', 'a blob upload needs Content-Length');
        if (len > limits.target) throw new ServerError('E_TOO_LARGE', `target of ${len} bytes exceeds the ${limits.target}-byte limit`);
        const r = await repository.uploadBlob(sha, len, req.body);
        metrics.uploadBytes += len;
        await audit(req, 'blob.upload', sha, { length: len, stored: r === 'stored' });
        return json(r === 'stored' ? 201 : 200, { sha256: sha, length: len, stored: r === 'stored' });
      },
    },
    {
      method: 'POST', pattern: /^\/api\/v1\/publish$/, who: 'admin',
      run: async (req) => {
        const r = await repository.publish(await readBody(req.body, limits.metadata));
        metrics.publishes++;
        await audit(req, 'publish', 'targets v' + r.targetsVersion, { targetsVersion: r.targetsVersion, added: r.added.map((a) => ({ name: a.name, sha256: a.sha256 })) });
        // A publish can leave blobs unreferenced (an upload it did not name): collect what is past its grace.
        await collectBlobs().catch(() => undefined);
        return json(200, r);
      },
    },
    {
      method: 'POST', pattern: /^\/api\/v1\/root$/, who: 'admin',
      run: async (req) => {
        const r = await repository.updateRoot(await readBody(req.body, limits.metadata));
        await audit(req, 'root.update', 'root v' + r.version, { version: r.version });
        return json(200, r);
      },
    },
    { method: 'GET', pattern: /^\/api\/v1\/rollouts$/, who: 'admin', run: async () => json(200, { rollouts: await rollouts.list() }) },
    {
      method: 'POST', pattern: /^\/api\/v1\/rollouts$/, who: 'admin',
      run: async (req) => {
        const r = await rollouts.create(await readJson(req.body, limits.json));
        await audit(req, 'rollout.create', r.id, { board: r.board, channel: r.channel, version: r.version, target: r.target, percent: r.percent, haltFailureRate: r.haltFailureRate });
        return json(201, r);
      },
    },
    { method: 'GET', pattern: /^\/api\/v1\/rollouts\/(r\d{1,9})$/, who: 'admin', run: async (_r, [id]) => json(200, await rollouts.status(id)) },
    { method: 'GET', pattern: /^\/api\/v1\/rollouts\/(r\d{1,9})\/devices$/, who: 'admin', run: async (_r, [id]) => json(200, { devices: await rollouts.devicesOf(id) }) },
    {
      method: 'POST', pattern: /^\/api\/v1\/rollouts\/(r\d{1,9})\/(pause|resume|promote)$/, who: 'admin',
      run: async (req, [id, action]) => {
        // Every admin write carries a JSON object, `{}` when it has no parameters: an empty body is refused.
        const body = await readJson(req.body, limits.json);
        const before = await rollouts.status(id);
        const r = action === 'pause' ? await rollouts.pause(id) : action === 'resume' ? await rollouts.resume(id) : await rollouts.promote(id, body);
        await audit(req, ('rollout.' + action) as AuditAction, id, action === 'promote' ? { from: before.percent, percent: r.percent } : { from: before.state, state: r.state });
        return json(200, r);
      },
    },
    { method: 'GET', pattern: /^\/api\/v1\/devices$/, who: 'admin', run: async () => json(200, { devices: await fleet.devices(), revoked: await storage.revocations() }) },
    {
      method: 'POST', pattern: /^\/api\/v1\/devices\/([A-Za-z0-9._-]{1,64})\/revoke$/, who: 'admin',
      run: async (req, [id]) => {
        const body = await readJson(req.body, limits.json);
        if (typeof body.reason !== 'string' || !body.reason.trim()) throw new ServerError('E_BAD_REQUEST', '"reason" must say why the identity is revoked');
        const r = await fleet.revoke(id, body.reason);
        await audit(req, 'device.revoke', id, { reason: r.reason });
        return json(200, r);
      },
    },
    {
      method: 'GET', pattern: /^\/dashboard\/?$/, who: 'local-or-admin',
      run: async () => ({
        status: 200,
        headers: { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': DASHBOARD_CSP, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' },
        body: renderDashboard(await dashboardData()),
      }),
    },
    {
      method: 'GET', pattern: /^\/metrics$/, who: 'local-or-admin',
      run: async () => ({
        status: 200,
        headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'cache-control': 'no-store' },
        body: renderMetrics(metrics, await rollouts.list(), await storage.fleet()),
      }),
    },
  ];

  async function dashboardData() {
    const versions = async (role: 'root' | 'targets' | 'snapshot' | 'timestamp') => (await storage.latestMetadata(role))?.version ?? 0;
    const t = await repository.currentTargets();
    return {
      now: clock(),
      fleet: await storage.fleet(),
      rollouts: await rollouts.list(),
      devices: await storage.devices(500),
      revocations: await storage.revocations(),
      audit: await storage.auditLog({ limit: 100 }),
      repository: {
        root: await versions('root'), targets: await versions('targets'), snapshot: await versions('snapshot'),
        timestamp: await versions('timestamp'), targetCount: t ? Object.keys(t.signed.targets).length : 0,
      },
    };
  }

  async function handle(req: AppRequest): Promise<AppResponse> {
    try {
      let allowed = false;
      for (const r of routes) {
        const m = r.pattern.exec(req.path);
        if (!m) continue;
        allowed = true;
        if (r.method !== req.method && !(r.method === 'GET' && req.method === 'HEAD')) continue;
        if (r.who === 'local-or-admin') {
          if (!(openLocal && isLoopback(req.remoteAddress))) await authenticate(req, storage, 'admin');
        } else if (r.who !== 'public' && r.refusesRevoked) {
          const caller = identify(req);
          // Another role than the route's: refused as authenticate() refuses it (revoked first).
          if (r.who !== 'any' && caller.role !== r.who) {
            refuseRevoked(caller.id, await storage.revocation(caller.id));
            requireRole(caller, r.who);
          }
          (req as Authed).caller = caller;
        } else if (r.who !== 'public') {
          (req as Authed).caller = await authenticate(req, storage, r.who);
        }
        if (r.who === 'admin' && WRITE_METHODS.has(req.method)) {
          refuseCrossSite(req.headers);
          requireMediaType(req.headers, r.accepts ?? 'application/json');
        }
        return await r.run(req, m.slice(1));
      }
      throw allowed ? new ServerError('E_METHOD', `${req.method} is not allowed on ${req.path}`) : new ServerError('E_NOT_FOUND', 'no such endpoint ' + req.path.slice(0, 200));
    } catch (e) {
      const res = errorResponse(e);
      const code = (e as { code?: string }).code ?? 'E_INTERNAL';
      metrics.refusals[code] = (metrics.refusals[code] ?? 0) + 1;
      return res;
    }
  }

  return {
    handle,
    tick: async () => {
      await repository.refresh();
      const now = Math.floor(Date.now() / 1000);
      if (now - lastCollect >= collectEveryS) {
        lastCollect = now;
        await collectBlobs();
      }
    },
    collectBlobs,
    repository,
    fleet,
    rollouts,
    metrics,
    storage,
  };
}

type Authed = AppRequest & { caller: Caller };

/**
 * One `bytes=` range (RFC 9110 §14.1.2): `a-b`, `a-` or `-n`. Several ranges, or anything
 * malformed, are ignored (a full 200), as the RFC allows; a start past the end is 416.
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}
