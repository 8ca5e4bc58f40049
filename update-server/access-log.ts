/**
 * The access log: one JSON line per request, written when its response is done (or cut off).
 *
 *   {"time":"2026-12-06T05:00:00.000Z","identity":"device:tv-0001","method":"POST",
 *    "route":"/api/v1/checkin","status":200,"bytes":35,"ms":4.2,"client":"192.0.2.7"}
 *
 * `identity` is what TLS verified (`device:ID`, `admin:ID` or `anonymous`), never a body field;
 * `route` is the path only: no query string (where tokens would travel), no headers, no body,
 * cut at 256 characters. `bytes` counts response body bytes handed to the connection; `ms`
 * runs from the request's headers to the end of the response. A response the client or a
 * limit cut off carries `"aborted":true`.
 *
 * Sinks: `stderr` (the default: journald, docker and systemd keep it), `file` (`access.log` in
 * the data folder, mode 0600, appended), or `off`. A file sink never makes a request wait: past
 * 1 MiB of unwritten lines it drops lines and says how many once it has caught up.
 */
import { createWriteStream, openSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { ServerError } from './errors';

export interface AccessLogEntry {
  time: string;
  identity: string;
  method: string;
  route: string;
  status: number;
  bytes: number;
  ms: number;
  client: string;
  aborted?: true;
}

export interface AccessLog {
  write(entry: AccessLogEntry): void;
  close(): Promise<void>;
}

export type AccessLogSink = 'stderr' | 'file' | 'off';
export const ACCESS_LOG_SINKS: readonly AccessLogSink[] = ['stderr', 'file', 'off'];
export const ACCESS_LOG_FILE = 'access.log';

const MAX_ROUTE = 256;
const MAX_BUFFERED = 1 << 20;

/** The entry as its line, in a fixed key order. */
export function accessLogLine(e: AccessLogEntry): string {
  const route = e.route.length > MAX_ROUTE ? e.route.slice(0, MAX_ROUTE) + '…' : e.route;
  return JSON.stringify({
    time: e.time, identity: e.identity, method: e.method.slice(0, 16), route, status: e.status, bytes: e.bytes,
    ms: Math.round(e.ms * 10) / 10, client: e.client, ...(e.aborted ? { aborted: true } : {}),
  }) + '\n';
}

/** The path of a request target without its query (and without a fragment, should one come). */
export function routeOf(target: string): string {
  const q = target.search(/[?#]/);
  return q < 0 ? target : target.slice(0, q);
}

class LineLog implements AccessLog {
  private dropped = 0;
  /**
   * Lines of this turn of the event loop, written together at its end: one write (a syscall,
   * stderr being synchronous on a pipe) per turn instead of one per request. A process killed
   * loses at most these, as it would lose what the stream had not written yet.
   */
  private pending = '';

  constructor(private readonly out: WriteStream | NodeJS.WriteStream, private readonly ownsStream: boolean) {
    out.on('error', () => undefined); // a full disk or a closed pipe must not take the server down
    out.on('drain', () => {
      if (this.dropped === 0) return;
      const n = this.dropped;
      this.dropped = 0;
      out.write(JSON.stringify({ time: new Date().toISOString(), event: 'access-log-dropped', lines: n }) + '\n');
    });
  }

  write(entry: AccessLogEntry): void {
    if (this.out.writableLength + this.pending.length > MAX_BUFFERED || this.out.destroyed) {
      this.dropped++;
      return;
    }
    if (this.pending === '') setImmediate(() => this.flush());
    this.pending += accessLogLine(entry);
  }

  private flush(): void {
    const lines = this.pending;
    this.pending = '';
    if (lines && !this.out.destroyed) this.out.write(lines);
  }

  close(): Promise<void> {
    this.flush();
    if (!this.ownsStream || this.out.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.out.end(() => resolve()));
  }
}

const OFF: AccessLog = { write: () => undefined, close: () => Promise.resolve() };

export function openAccessLog(sink: AccessLogSink, dataDir: string): AccessLog {
  if (sink === 'off') return OFF;
  if (sink === 'stderr') return new LineLog(process.stderr, false);
  if (sink === 'file') {
    const path = join(dataDir, ACCESS_LOG_FILE);
    let fd: number;
    try {
      fd = openSync(path, 'a', 0o600);
    } catch (e) {
      throw new ServerError('E_SERVER_CONFIG', `cannot open the access log ${path}: ${(e as Error).message}`, e);
    }
    return new LineLog(createWriteStream(path, { fd }), true);
  }
  throw new ServerError('E_SERVER_CONFIG', `--access-log must be one of ${ACCESS_LOG_SINKS.join(', ')}, not ${JSON.stringify(String(sink).slice(0, 40))}`);
}
