/**
 * The admin side of the update server's API over HTTPS with a client certificate (the
 * adapter: the only file here that imports node:https). `signet publish`, `signet rollout`
 * and `signet device revoke` call the server through it.
 */
import { createReadStream } from 'node:fs';
import { request } from 'node:https';
import { loadIdentity } from '../keys/device';
import { SignetError } from '../util/errors';

export interface ClientTls {
  certPem: string;
  keyPem: string;
  /** The vendor CA: the server's certificate must chain to it. */
  caPem: string;
}

/** A refusal from the server (its code passed through) or a failure to reach it. */
export class RemoteError extends SignetError {
  readonly status: number;
  constructor(code: string, message: string, hint: string, status = 0, cause?: unknown) {
    super(code, message, hint, cause);
    Object.setPrototypeOf(this, RemoteError.prototype);
    this.status = status;
    this.name = 'RemoteError';
  }
}

type Body = string | Uint8Array | { file: string; length: number };

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

const MAX_RESPONSE = 64 * 1024 * 1024;

export class AdminClient {
  private readonly base: URL;

  constructor(server: string, private readonly tls: ClientTls, private readonly timeoutMs = 600_000) {
    try {
      this.base = new URL(server);
    } catch (e) {
      throw new RemoteError('E_USAGE', `--server must be a URL like https://localhost:8443, got "${server}"`, 'pass --server https://HOST:PORT', 0, e);
    }
    if (this.base.protocol !== 'https:') throw new RemoteError('E_USAGE', 'the update server is reached over https only', 'pass --server https://HOST:PORT');
  }

  raw(method: string, path: string, body?: Body, headers: Record<string, string> = {}): Promise<RawResponse> {
    const url = new URL(path, this.base);
    return new Promise((resolve, reject) => {
      const h: Record<string, string | number> = { ...headers };
      if (body !== undefined) h['content-length'] = typeof body === 'string' ? Buffer.byteLength(body) : body instanceof Uint8Array ? body.length : body.length;
      const req = request(url, {
        method, headers: h, cert: this.tls.certPem, key: this.tls.keyPem, ca: this.tls.caPem, timeout: this.timeoutMs,
        servername: /^[\d.:[\]]+$/.test(url.hostname) ? undefined : url.hostname,
      }, (res) => {
        const parts: Buffer[] = [];
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          if (n > MAX_RESPONSE) {
            res.destroy();
            reject(new RemoteError('E_SERVER_RESPONSE', 'server response exceeds ' + MAX_RESPONSE + ' bytes', 'check --server'));
            return;
          }
          parts.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('timed out after ' + this.timeoutMs + ' ms')));
      req.on('error', (e: NodeJS.ErrnoException) => reject(connectionError(this.base.origin, e)));
      if (body === undefined) req.end();
      else if (typeof body === 'string' || body instanceof Uint8Array) req.end(body);
      else createReadStream(body.file).on('error', (e) => req.destroy(e)).pipe(req);
    });
  }

  /** A JSON call; a non-2xx answer becomes a RemoteError with the server's code. */
  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.raw(method, path, body === undefined ? undefined : JSON.stringify(body),
      body === undefined ? {} : { 'content-type': 'application/json' });
    return parseAnswer<T>(r);
  }

  getTargets(): Promise<{ root: number; targets: unknown | null }> {
    return this.json('GET', '/api/v1/targets');
  }

  async uploadBlob(sha256: string, file: string, length: number): Promise<{ stored: boolean }> {
    return parseAnswer(await this.raw('PUT', '/api/v1/blobs/' + sha256, { file, length }, { 'content-type': 'application/octet-stream' }));
  }

  async publish(targetsBytes: Uint8Array): Promise<PublishAnswer> {
    return parseAnswer(await this.raw('POST', '/api/v1/publish', targetsBytes, { 'content-type': 'application/json' }));
  }

  /** The next root (signed by the old and new root thresholds); the server serves it as N.root.json. */
  async pushRoot(rootBytes: Uint8Array): Promise<{ version: number }> {
    return parseAnswer(await this.raw('POST', '/api/v1/root', rootBytes, { 'content-type': 'application/json' }));
  }

  /** `N.root.json` as the server serves it to devices (bytes, not trusted by themselves). */
  async rootFile(version: number): Promise<Uint8Array> {
    const r = await this.raw('GET', '/tuf/metadata/' + version + '.root.json');
    if (r.status !== 200) parseAnswer(r);
    return new Uint8Array(r.body);
  }
}

export interface PublishAnswer {
  targetsVersion: number;
  snapshotVersion: number;
  timestampVersion: number;
  added: { name: string; sha256: string; length: number; path: string }[];
}

function parseAnswer<T>(r: RawResponse): T {
  let v: unknown;
  try {
    v = JSON.parse(r.body.toString('utf8'));
  } catch {
    throw new RemoteError('E_SERVER_RESPONSE', `server answered ${r.status} with something that is not JSON`, 'check that --server is a Signet update server', r.status);
  }
  if (r.status >= 200 && r.status < 300) return v as T;
  const err = (v as { error?: { code?: string; message?: string; hint?: string } }).error;
  if (err && typeof err.code === 'string') {
    throw new RemoteError(err.code, 'server refused: ' + (err.message ?? 'no reason given'), err.hint ?? 'see the server log', r.status);
  }
  throw new RemoteError('E_SERVER_RESPONSE', `server answered ${r.status}`, 'see the server log', r.status);
}

function connectionError(origin: string, e: NodeJS.ErrnoException): RemoteError {
  const code = e.code ?? '';
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH') {
    return new RemoteError('E_SERVER_UNREACHABLE', `cannot reach ${origin} (${code})`, 'start it with `signet server` or check --server', 0, e);
  }
  if (/CERT|SELF_SIGNED|ALTNAME|UNABLE_TO_VERIFY/.test(code) || /certificate/i.test(e.message)) {
    return new RemoteError('E_SERVER_TLS_UNTRUSTED', `the server at ${origin} did not present a certificate from the vendor CA (${code || e.message})`,
      'use the vendor-ca.crt of this server\'s keys, and a host name its certificate names', 0, e);
  }
  return new RemoteError('E_SERVER_UNREACHABLE', `request to ${origin} failed: ${e.message}`, 'check the server and the network', 0, e);
}

export const DEFAULT_SERVER = 'https://localhost:8443';
export const SERVER_ENV = 'SIGNET_SERVER';
export const ADMIN_ENV = 'SIGNET_ADMIN';

/** `--server` or $SIGNET_SERVER or https://localhost:8443; `--admin` or $SIGNET_ADMIN or ./admin. */
export function adminClientFor(server: string | undefined, adminDir: string | undefined): AdminClient {
  const id = loadIdentity(adminDir || process.env[ADMIN_ENV] || 'admin');
  return new AdminClient(server || process.env[SERVER_ENV] || DEFAULT_SERVER, id);
}
