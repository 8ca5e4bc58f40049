/**
 * The server's own request and response shapes. The app (app.ts) sees only these; the adapter
 * (http-node.ts) translates node:https to and from them, so tests can call the app directly
 * and the server can be built without listening on a port.
 */
import { isSignetError } from '../sdk/util/errors';
import { ServerError } from './errors';

/** What TLS established about the peer. The adapter fills it from the socket. */
export interface ClientCert {
  /** A certificate was presented. */
  present: boolean;
  /** It chains to the vendor CA and is within its validity. */
  authorized: boolean;
  authorizationError?: string;
  commonName?: string;
  /** Subject OU values: `device`, `admin`. */
  roles: string[];
  serial?: string;
}

export interface AppRequest {
  method: string;
  /** Path without the query, percent-decoding not applied. */
  path: string;
  query: URLSearchParams;
  /** Lower-case names. */
  headers: Record<string, string | undefined>;
  body: AsyncIterable<Uint8Array>;
  client: ClientCert;
  remoteAddress: string;
}

export interface StreamBody {
  stream: AsyncIterable<Uint8Array>;
  length: number;
}

export interface AppResponse {
  status: number;
  headers: Record<string, string>;
  body?: Uint8Array | string | StreamBody;
}

export function json(status: number, value: unknown, headers: Record<string, string> = {}): AppResponse {
  return { status, headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }, body: JSON.stringify(value) };
}

/** Any error as the JSON error body; Signet errors keep their code, anything else is a 500. */
export function errorResponse(e: unknown): AppResponse {
  if (e instanceof ServerError) return json(e.status, { error: { code: e.code, message: e.message, hint: e.hint } });
  if (isSignetError(e)) return json(422, { error: { code: e.code, message: e.message, hint: e.hint } });
  return json(500, { error: { code: 'E_INTERNAL', message: 'internal server error', hint: 'see the server log' } });
}

/** Read a request body, refusing as soon as it passes `max` bytes (never buffering more). */
export async function readBody(body: AsyncIterable<Uint8Array>, max: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of body) {
    n += chunk.length;
    if (n > max) throw new ServerError('E_TOO_LARGE', `request body exceeds ${max} bytes`);
    parts.push(chunk);
  }
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A JSON object body; an empty body is `{}` when `emptyOk` (optional parameters). */
export async function readJson(body: AsyncIterable<Uint8Array>, max: number, emptyOk = false): Promise<Record<string, unknown>> {
  const bytes = await readBody(body, max);
  if (emptyOk && bytes.length === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new ServerError('E_BAD_REQUEST', 'request body is not JSON', e);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ServerError('E_BAD_REQUEST', 'request body must be a JSON object');
  return v as Record<string, unknown>;
}
