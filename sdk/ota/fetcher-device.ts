/**
 * The device's `Fetcher` (sdk/ota/fetcher.ts contract) over the runtime's fetch
 * (sdk/runtime/fetch.ts: mbed TLS in the C host on a device, node:tls under Node): HTTPS with
 * mutual TLS (the device's certificate and key from its config store), the server checked
 * against the vendor CA under `servername`.
 *
 * The runtime's fetch reads an answer whole, and stops the moment it passes its cap, so the
 * cap here is the resource's (`maxBytes - offset`) plus room for the head: endless data ends
 * with E_FETCH_TOO_LARGE while streaming, never after. A resumed request sends
 * `Range: bytes=offset-`; a 206 must start at `offset`, a 200 is skipped up to it. A cut answer
 * (the runtime's rejection carries its head and the body bytes that arrived) delivers those
 * bytes, then ends with E_FETCH_CUT, as the Node fetcher does: the core's next request asks for
 * `Range: bytes=<received>-` and its hash goes on.
 *
 * 429 (the server's rate limit) is E_FETCH_HTTP, not a refusal: it says nothing about the
 * request, and `retryAfterS` on the error carries the server's Retry-After for the scheduler.
 * ES5, no Node imports: bundled into the boot stage for Duktape.
 */
import { fetch as runtimeFetch, type FetchCutInfo, type FetchResponse } from '../runtime/fetch';
import type { SignetError } from '../util/errors';
import { OtaError } from './errors';
import { contentRangeStart, type FetchHandle, type FetchRequest, type Fetcher, type FetchSink } from './fetcher';

export interface DeviceFetcherTls {
  /** PEM of the CA the server's certificate must chain to. */
  ca: string;
  /** The device's own certificate and key (mutual TLS). */
  cert?: string;
  key?: string;
  /** The name the server's certificate must carry (default: the URL's host). */
  servername?: string;
}

export interface DeviceFetcherOptions {
  tls?: DeviceFetcherTls;
  /** Every answer's URL and headers, before its status is judged (the agent's server clock). */
  onResponse?(url: string, headers: Record<string, string>): void;
  /** No complete answer after this long is E_FETCH_STALL (ms, default 60000). */
  timeoutMs?: number;
}

/** Room for the status line and headers on top of a resource's cap. */
export const HEAD_ALLOWANCE = 16 * 1024;

/** An error carrying the server's Retry-After (429, 503), in seconds. */
export interface RetryAfter {
  retryAfterS?: number;
}

/** The seconds of a Retry-After header (delta-seconds only; an HTTP date is ignored). */
export function parseRetryAfter(v: string | undefined): number | null {
  if (v === undefined || !/^\s*\d{1,9}\s*$/.test(v)) return null;
  return Number(v);
}

function codeOf(e: unknown): string {
  const c = e && typeof e === 'object' ? (e as { code?: unknown }).code : undefined;
  return typeof c === 'string' ? c : '';
}

/** The runtime's refusals as the fetcher contract names them. */
function fromRuntime(url: string, e: unknown): SignetError {
  const code = codeOf(e);
  const msg = e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string' ? (e as { message: string }).message : String(e);
  if (code === 'E_FETCH_TOO_LARGE') return new OtaError('E_FETCH_TOO_LARGE', url + ' sent more than its cap', e);
  if (code === 'E_FETCH_TIMEOUT') return new OtaError('E_FETCH_STALL', url + ': ' + msg, e);
  if (code === 'E_FETCH_RESPONSE' && /cut off/.test(msg)) return new OtaError('E_FETCH_CUT', url + ': ' + msg, e);
  return new OtaError('E_FETCH_NETWORK', url + ': ' + (code ? code + ' ' : '') + msg, e);
}

/** The server's own error code, when its refusal says one (`{"error":{"code":"E_…"}}`). */
function serverReason(body: Uint8Array): string {
  let s = '';
  for (let i = 0; i < body.length && i < 4096; i++) s += String.fromCharCode(body[i]);
  const m = /"code"\s*:\s*"(E_[A-Z0-9_]{1,40})"/.exec(s);
  return m ? ' (' + m[1] + ')' : '';
}

export class DeviceFetcher implements Fetcher {
  private readonly o: DeviceFetcherOptions;

  constructor(o: DeviceFetcherOptions = {}) {
    this.o = o;
  }

  fetch(req: FetchRequest, sink: FetchSink): FetchHandle {
    let done = false;
    const finish = function (err: SignetError | null): void {
      if (done) return;
      done = true;
      sink.end(err);
    };
    const offset = req.offset || 0;
    const abort = { abort: function () { finish(new OtaError('E_FETCH_NETWORK', req.url + ': aborted')); } };
    if (offset >= req.maxBytes) {
      Promise.resolve().then(function () {
        finish(new OtaError('E_FETCH_RANGE', req.url + ': resume offset ' + offset + ' is at or past the cap'));
      });
      return abort;
    }
    const headers: Record<string, string> = {};
    if (req.body) headers['content-type'] = req.contentType || 'application/json';
    if (offset > 0) headers.range = 'bytes=' + offset + '-';
    const tls = this.o.tls;
    const onResponse = this.o.onResponse;
    runtimeFetch(req.url, {
      method: req.method || 'GET',
      headers: headers,
      body: req.body,
      ca: tls ? tls.ca : undefined,
      cert: tls ? tls.cert : undefined,
      key: tls ? tls.key : undefined,
      servername: tls ? tls.servername : undefined,
      maxBytes: req.maxBytes - offset + HEAD_ALLOWANCE,
      timeout: this.o.timeoutMs !== undefined ? this.o.timeoutMs : 60000,
    }).then(function (res: FetchResponse) {
      return res.bytes().then(function (body: Uint8Array) {
        answer(res.status, res.headers, body, null);
      });
    }).then(undefined, function (e: unknown) {
      const cut = e && typeof e === 'object' ? (e as Partial<FetchCutInfo>) : {};
      const err = fromRuntime(req.url, e);
      // A cut answer's head and the body bytes that did arrive: delivered like the Node
      // fetcher's stream, then E_FETCH_CUT, so the core resumes from the byte it was cut at.
      if (!done && cut.partial instanceof Uint8Array && typeof cut.status === 'number' && cut.headers) {
        return answer(cut.status, cut.headers, cut.partial, new OtaError('E_FETCH_CUT', err.message, e));
      }
      finish(err);
    });
    /** Judges an answer's status and hands its body on; `cut` ends it when the body was cut. */
    function answer(status: number, resHeaders: Record<string, string>, body: Uint8Array, cut: SignetError | null): void {
      if (done) return;
      if (onResponse) onResponse(req.url, resHeaders);
      let skip = 0;
      if (status === 404) return finish(new OtaError('E_FETCH_NOT_FOUND', req.url + ' is not on the server (404)'));
      if (status === 429 || status === 503) {
        const e = new OtaError('E_FETCH_HTTP', req.url + ' answered HTTP ' + status + serverReason(body) + ': try again later');
        const after = parseRetryAfter(resHeaders['retry-after']);
        if (after !== null) (e as SignetError & RetryAfter).retryAfterS = after;
        return finish(e);
      }
      if (offset > 0 && status === 206) {
        if (contentRangeStart(resHeaders['content-range']) !== offset) {
          return finish(new OtaError('E_FETCH_RANGE', req.url + ': asked for bytes from ' + offset + ', got ' + String(resHeaders['content-range'])));
        }
      } else if (offset > 0 && status === 200) {
        skip = offset;
      } else if (status === 416) {
        return finish(new OtaError('E_FETCH_RANGE', req.url + ': the server refused the range from ' + offset + ' (416)'));
      } else if (status >= 400 && status <= 499) {
        return finish(new OtaError('E_FETCH_REFUSED', req.url + ' answered HTTP ' + status + serverReason(body)));
      } else if (status < 200 || status > 299 || status === 206) {
        return finish(new OtaError('E_FETCH_HTTP', req.url + ' answered HTTP ' + status));
      }
      if (body.length < skip) return finish(cut || new OtaError('E_FETCH_CUT', req.url + ': the answer ended before the resume offset ' + offset));
      const part = skip > 0 ? body.subarray(skip) : body;
      // The hard cap once more, on the resource's bytes (the runtime's also counted the head).
      if (offset + part.length > req.maxBytes) {
        return finish(new OtaError('E_FETCH_TOO_LARGE', req.url + ' sent more than its cap of ' + req.maxBytes + ' bytes'));
      }
      if (part.length > 0 && sink.data(part) === false) return finish(new OtaError('E_FETCH_NETWORK', 'stopped by the receiver'));
      finish(cut);
    }
    return abort;
  }
}
