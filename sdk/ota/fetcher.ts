/**
 * Moving bytes for the OTA agent: one small interface, implemented by an adapter per platform
 * (`fetcher-node.ts` on Node; the device's C host supplies its own). The agent core only sees
 * this file, so it stays ES5 and Promise-free: a request is a call with a sink of callbacks.
 *
 * Contract for adapters:
 *   - `data` chunks arrive in order and start at `offset` of the resource. A server that
 *     ignores `Range` and answers 200 is handled by the adapter (skip, or E_FETCH_RANGE).
 *   - `maxBytes` is a hard cap on `offset` + bytes delivered, enforced *while streaming*: the
 *     adapter stops reading and fails with E_FETCH_TOO_LARGE the moment it would pass it (and
 *     up front when a Content-Length already says so).
 *   - A body that ends before its declared length ends with E_FETCH_CUT (resumable); a stalled
 *     or trickling peer with E_FETCH_STALL / E_FETCH_SLOW; 404 with E_FETCH_NOT_FOUND.
 *   - `end` is called exactly once. If `data` returns false the adapter stops reading and still
 *     calls `end` (with any error: the sink already knows why it stopped).
 * The core checks the cap again on its side, so a faulty adapter cannot hand it endless data.
 */
import type { SignetError } from '../util/errors';
import { asSignetError, OtaError } from './errors';

export interface FetchRequest {
  url: string;
  method?: 'GET' | 'POST';
  /** Request body (POST); sent as application/json unless contentType says otherwise. */
  body?: Uint8Array;
  contentType?: string;
  /** Hard cap on the resource's bytes: offset + everything delivered. */
  maxBytes: number;
  /** Resume: the first byte wanted (`Range: bytes=offset-`). */
  offset?: number;
}

export interface FetchSink {
  /** The next chunk. Return false to stop the transfer. */
  data(chunk: Uint8Array): boolean | void;
  /** Once, at the end: null when the body ended where the server said it would. */
  end(err: SignetError | null): void;
}

export interface FetchHandle {
  abort(): void;
}

export interface Fetcher {
  fetch(req: FetchRequest, sink: FetchSink): FetchHandle;
}

export type Callback<T> = (err: SignetError | null, value?: T) => void;

/** A callback that runs at most once, whatever an adapter does. */
export function once<T>(cb: Callback<T>): Callback<T> {
  let called = false;
  return function (err: SignetError | null, value?: T) {
    if (called) return;
    called = true;
    cb(err, value);
  };
}

/**
 * Fetch a whole (small) resource into memory, e.g. metadata or an API answer, holding the
 * adapter to `maxBytes` chunk by chunk.
 */
export function fetchBytes(fetcher: Fetcher, req: FetchRequest, callback: Callback<Uint8Array>): void {
  const cb = once(callback);
  const chunks: Uint8Array[] = [];
  let got = 0;
  let stopped: SignetError | null = null;
  try {
    fetcher.fetch(req, {
      data: function (chunk: Uint8Array) {
        if (stopped) return false;
        got += chunk.length;
        if (got > req.maxBytes) {
          stopped = new OtaError('E_FETCH_TOO_LARGE', req.url + ' is larger than its cap of ' + req.maxBytes + ' bytes');
          return false;
        }
        chunks.push(chunk);
        return true;
      },
      end: function (err: SignetError | null) {
        if (stopped) return cb(stopped);
        if (err) return cb(err);
        const out = new Uint8Array(got);
        let off = 0;
        for (let i = 0; i < chunks.length; i++) {
          out.set(chunks[i], off);
          off += chunks[i].length;
        }
        cb(null, out);
      },
    });
  } catch (e) {
    cb(asSignetError(e));
  }
}

/** `Content-Range: bytes a-b/total` → a (where a 206 answer starts), or null for anything else. */
export function contentRangeStart(v: string | undefined): number | null {
  const m = v ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(v.trim()) : null;
  return m ? Number(m[1]) : null;
}
