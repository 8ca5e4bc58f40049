/**
 * The Node adapter of `Fetcher`: HTTP and HTTPS (with a client certificate for mutual TLS),
 * a hard size cap while streaming, resume with `Range`, and a slow-retrieval guard (a stall
 * timeout and an optional minimum average rate). The only OTA file that imports node:http(s).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { SignetError } from '../util/errors';
import { asSignetError, OtaError } from './errors';
import { contentRangeStart, type FetchHandle, type Fetcher, type FetchRequest, type FetchSink } from './fetcher';

export interface NodeFetcherTls {
  /** CA certificate(s) the server's certificate must chain to (the vendor CA). */
  ca?: string | Buffer | Array<string | Buffer>;
  /** This device's certificate and key (PEM), presented for mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  servername?: string;
}

export interface NodeFetcherOptions {
  tls?: NodeFetcherTls;
  /** Fail with E_FETCH_STALL when no byte (or no response) arrives for this long. Default 15 s. */
  stallTimeoutMs?: number;
  /** Fail with E_FETCH_SLOW when the average rate falls below this after the grace period. Default off. */
  minBytesPerSecond?: number;
  /** How long a transfer may run before the rate floor applies. Default 5 s. */
  rateGraceMs?: number;
  /** Passed to http(s).request (e.g. a keep-alive agent for many requests). */
  agent?: http.Agent;
}

export const DEFAULT_STALL_TIMEOUT_MS = 15_000;
export const DEFAULT_RATE_GRACE_MS = 5_000;

export class NodeFetcher implements Fetcher {
  private readonly opts: NodeFetcherOptions;

  constructor(opts: NodeFetcherOptions = {}) {
    this.opts = opts;
  }

  fetch(req: FetchRequest, sink: FetchSink): FetchHandle {
    const stallMs = this.opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    const minRate = this.opts.minBytesPerSecond ?? 0;
    const graceMs = this.opts.rateGraceMs ?? DEFAULT_RATE_GRACE_MS;
    const offset = req.offset ?? 0;
    const started = Date.now();
    let done = false;
    let stall: NodeJS.Timeout | undefined;
    let request: http.ClientRequest | undefined;
    let received = 0; // body bytes delivered to the sink in this request

    const finish = (err: SignetError | null): void => {
      if (done) return;
      done = true;
      if (stall) clearTimeout(stall);
      if (err && request) request.destroy();
      try {
        sink.end(err);
      } catch {
        // the sink's own failure is its business; the request is over
      }
    };
    const armStall = (): void => {
      if (stall) clearTimeout(stall);
      stall = setTimeout(() => {
        finish(new OtaError('E_FETCH_STALL', req.url + ': nothing received for ' + stallMs + ' ms'));
      }, stallMs);
    };

    let url: URL;
    try {
      url = new URL(req.url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('unsupported scheme ' + url.protocol);
    } catch (e) {
      process.nextTick(() => finish(new OtaError('E_FETCH_NETWORK', 'bad URL ' + req.url, e)));
      return { abort: () => finish(new OtaError('E_FETCH_NETWORK', 'aborted')) };
    }
    if (offset >= req.maxBytes && req.maxBytes > 0) {
      process.nextTick(() => finish(new OtaError('E_FETCH_RANGE', req.url + ': resume offset ' + offset + ' is at or past the cap')));
      return { abort: () => finish(new OtaError('E_FETCH_NETWORK', 'aborted')) };
    }

    const headers: http.OutgoingHttpHeaders = { 'accept-encoding': 'identity' };
    if (offset > 0) headers.range = 'bytes=' + offset + '-';
    if (req.body) {
      headers['content-type'] = req.contentType ?? 'application/json';
      headers['content-length'] = String(req.body.length);
    }
    const tls = this.opts.tls ?? {};
    const options: https.RequestOptions = {
      method: req.method ?? 'GET',
      headers,
      agent: this.opts.agent,
      ...(url.protocol === 'https:' ? { ca: tls.ca, cert: tls.cert, key: tls.key, servername: tls.servername } : {}),
    };

    const onResponse = (res: http.IncomingMessage): void => {
      if (done) {
        res.destroy();
        return;
      }
      armStall();
      const status = res.statusCode ?? 0;
      let skip = 0; // bytes before `offset` when a server ignored Range
      if (status === 404) return finish(new OtaError('E_FETCH_NOT_FOUND', req.url + ' is not on the server (404)'));
      if (offset > 0 && status === 206) {
        if (contentRangeStart(res.headers['content-range']) !== offset) {
          return finish(new OtaError('E_FETCH_RANGE', req.url + ': asked for bytes from ' + offset + ', got ' + String(res.headers['content-range'])));
        }
      } else if (offset > 0 && status === 200) {
        skip = offset;
      } else if (status === 416) {
        return finish(new OtaError('E_FETCH_RANGE', req.url + ': the server refused the range from ' + offset + ' (416)'));
      } else if (status === 429 || status === 408) {
        // Rate limited or too slow: says nothing about the request, which may be sent again later
        // (a report answered so stays queued; only a refusal drops it).
        return finish(new OtaError('E_FETCH_HTTP', req.url + ' answered HTTP ' + status + ': try again later'));
      } else if (status >= 400 && status <= 499) {
        return refused(res, status);
      } else if (status < 200 || status > 299 || status === 206) {
        return finish(new OtaError('E_FETCH_HTTP', req.url + ' answered HTTP ' + status));
      }
      const declaredHeader = res.headers['content-length'];
      const declared = declaredHeader !== undefined ? Number(declaredHeader) : NaN;
      // Endless data, refused before the first byte when the server admits to it.
      if (!isNaN(declared) && offset + declared - skip > req.maxBytes) {
        return finish(new OtaError('E_FETCH_TOO_LARGE', req.url + ' is ' + (offset + declared - skip) + ' bytes, over its cap of ' + req.maxBytes));
      }
      let ended = false;
      res.on('data', (buf: Buffer) => {
        if (done) return;
        armStall();
        let chunk = new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
        if (skip > 0) {
          const n = Math.min(skip, chunk.length);
          skip -= n;
          chunk = chunk.subarray(n);
          if (chunk.length === 0) return;
        }
        received += chunk.length;
        if (offset + received > req.maxBytes) {
          return finish(new OtaError('E_FETCH_TOO_LARGE', req.url + ' sent more than its cap of ' + req.maxBytes + ' bytes'));
        }
        const elapsed = Date.now() - started;
        if (minRate > 0 && elapsed > graceMs && (received * 1000) / elapsed < minRate) {
          return finish(new OtaError('E_FETCH_SLOW', req.url + ': ' + Math.round((received * 1000) / elapsed) + ' B/s, below the floor of ' + minRate + ' B/s'));
        }
        let more: boolean | void;
        try {
          more = sink.data(chunk);
        } catch (e) {
          return finish(asSignetError(e));
        }
        if (more === false) finish(new OtaError('E_FETCH_NETWORK', 'stopped by the receiver'));
      });
      res.on('end', () => {
        ended = true;
        if (!res.complete || (!isNaN(declared) && received + (offset > 0 && status === 200 ? offset : 0) < declared)) {
          return finish(new OtaError('E_FETCH_CUT', req.url + ': the connection closed after ' + (offset + received) + ' bytes'));
        }
        finish(null);
      });
      res.on('error', (e) => finish(new OtaError('E_FETCH_CUT', req.url + ': the connection broke after ' + (offset + received) + ' bytes', e)));
      res.on('close', () => {
        if (!ended) finish(new OtaError('E_FETCH_CUT', req.url + ': the connection closed after ' + (offset + received) + ' bytes'));
      });
    };

    // A refusal: the line a person reads names the server's own code when it gave one
    // (E_DEVICE_BOARD, E_AUTH_REVOKED, ...), read from at most 4 KiB of its answer.
    const refused = (res: http.IncomingMessage, status: number): void => {
      const parts: Buffer[] = [];
      let n = 0;
      const end = () => finish(new OtaError('E_FETCH_REFUSED', req.url + ' answered HTTP ' + status + serverReason(Buffer.concat(parts))));
      res.on('data', (buf: Buffer) => {
        parts.push(buf);
        n += buf.length;
        if (n >= 4096) end();
      });
      res.on('end', end);
      res.on('error', end);
      res.on('close', end);
    };

    let responded = false;
    let retried = false;
    const send = (): void => {
      try {
        request = (url.protocol === 'https:' ? https : http).request(url, options, (res) => {
          responded = true;
          onResponse(res);
        });
      } catch (e) {
        process.nextTick(() => finish(new OtaError('E_FETCH_NETWORK', 'cannot request ' + req.url, e)));
        return;
      }
      const sent = request;
      sent.on('error', (e: NodeJS.ErrnoException) => {
        // A kept-alive socket the server closed just as we reused it: send once more on a new one
        // (the retry Node's documentation recommends; nothing was received, so nothing repeats).
        if (!responded && !retried && !done && sent.reusedSocket && e.code === 'ECONNRESET') {
          retried = true;
          return send();
        }
        finish(new OtaError(received > 0 ? 'E_FETCH_CUT' : 'E_FETCH_NETWORK', req.url + ': ' + e.message, e));
      });
      armStall();
      sent.end(req.body ? Buffer.from(req.body.buffer, req.body.byteOffset, req.body.length) : undefined);
    };
    send();
    return { abort: () => finish(new OtaError('E_FETCH_NETWORK', req.url + ': aborted')) };
  }
}

/** ` (E_CODE: message)` from a Signet server's JSON error body, or nothing. */
function serverReason(body: Buffer): string {
  try {
    const e = (JSON.parse(body.subarray(0, 4096).toString('utf8')) as { error?: { code?: unknown; message?: unknown } }).error;
    if (!e || typeof e.code !== 'string' || !/^E_[A-Z0-9_]{1,48}$/.test(e.code)) return '';
    const msg = typeof e.message === 'string' ? ': ' + e.message.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, 200) : '';
    return ' (' + e.code + msg + ')';
  } catch {
    return '';
  }
}
