/**
 * Replicas behind a load balancer, and devices that report through it the way the agent does.
 * Shared by tests/fleet-nginx.test.ts and bench/_fleet-replicas.ts (fleet.lost_reports).
 *
 *   - `startReplica`: `signet server --db postgres://…` as a child process on a given port (so a
 *     killed replica can come back where nginx's upstream list names it), access log on stderr
 *     kept, so a caller can see which replica served what.
 *   - `ReportingDevice`: the real `OtaAgent` report queue (persisted first, delivered in order,
 *     a failed delivery kept for the next attempt) over the real `NodeFetcher` with the device's
 *     certificate: what a device does when its connection is reset mid-report.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent } from 'node:https';
import type { Identity } from '../../sdk/keys/device';
import { nodeCrypto } from '../../sdk/image/crypto-node';
import { OtaAgent, type ReportBody } from '../../sdk/ota/agent';
import { MemoryMetadataStore } from '../../sdk/ota/client-store';
import { NodeFetcher } from '../../sdk/ota/fetcher-node';
import { OtaError } from '../../sdk/ota/errors';

export interface Replica {
  child: ChildProcess;
  url: string;
  port: number;
  /** Access-log lines (JSON) this replica wrote so far. */
  log: string[];
  /** Resolves with the exit code or signal. */
  exited: Promise<number | NodeJS.Signals | null>;
}

export interface ReplicaOptions {
  /** The CLI to run (dist/signet.mjs in tests, sdk/cli/signet.mjs in benchmarks). */
  cli: string;
  dataDir: string;
  keysDir: string;
  db: string;
  port: number;
  /** `--limit NAME=N` values. */
  limits?: Record<string, number>;
}

export function startReplica(o: ReplicaOptions): Promise<Replica> {
  const args = [o.cli, 'server', '--data', o.dataDir, '--keys', o.keysDir, '--db', o.db, '--port', String(o.port), '--json'];
  for (const [k, v] of Object.entries(o.limits ?? {})) args.push('--limit', `${k}=${v}`);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SIGNET_PASSPHRASE: '' } });
  const log: string[] = [];
  let partial = '';
  let tail = '';
  child.stderr!.on('data', (c: Buffer) => {
    const text = partial + c.toString();
    const lines = text.split('\n');
    partial = lines.pop()!;
    for (const l of lines) if (l.startsWith('{')) log.push(l);
    tail = (tail + c.toString()).slice(-4096);
  });
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) => child.once('exit', (code, sig) => resolve(sig ?? code)));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, url: (JSON.parse(out.slice(0, nl)) as { url: string }).url, port: o.port, log, exited });
    });
    child.once('exit', (code, sig) => reject(new Error(`signet server exited (${code ?? sig}) before listening: ${tail}`)));
  });
}

/** SIGKILL, and wait until the process is gone (its sockets closed by the kernel). */
export async function killReplica(r: Replica): Promise<void> {
  if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  await r.exited;
}

/**
 * One connection per delivery, closed after it (a device has its own address; here every
 * device is 127.0.0.1, and idle keep-alive sockets would count against the per-address cap).
 */
const noKeepAlive = new Agent({ keepAlive: false });

/** A device's report path: the agent's persisted queue, delivered through `serverUrl` (the load balancer). */
export class ReportingDevice {
  private readonly agent: OtaAgent;
  /** Deliveries that failed and were kept for later (connection reset, refused, stalled). */
  deferred = 0;
  /** Why each deferred delivery failed (E_FETCH_… codes), in order. */
  readonly deferredReasons: string[] = [];

  constructor(readonly id: Pick<Identity, 'id' | 'certPem' | 'keyPem' | 'board'>, serverUrl: string, rootBytes: Uint8Array, caPem: string) {
    const store = new MemoryMetadataStore();
    this.agent = new OtaAgent({
      serverUrl,
      fetcher: new NodeFetcher({ tls: { ca: caPem, cert: id.certPem, key: id.keyPem }, stallTimeoutMs: 10_000, agent: noKeepAlive }),
      store,
      crypto: nodeCrypto,
      rootBytes,
      now: () => Math.floor(Date.now() / 1000),
      device: () => ({ board: id.board ?? 'qemu-virt-arm64', version: '1.0.0', securityCounter: 1, slot: 'a', securityFloor: 1 }),
      // Only the report queue is used here: nothing is ever installed.
      install: { stageImage: () => { throw new OtaError('E_CLIENT_STATE', 'this simulated device installs nothing'); } },
      maxImageBytes: 0,
      log: (line) => {
        const m = /^ota\[REPORT\] deferred reason=(\S+)/.exec(line);
        if (m) {
          this.deferred++;
          this.deferredReasons.push(m[1]);
        }
      },
    });
  }

  /** Queue one report and try to deliver the queue once (as the agent does). */
  report(body: ReportBody): Promise<void> {
    return new Promise((resolve) => this.agent.report(body, () => resolve()));
  }

  pending(): number {
    return this.agent.queuedReports().length;
  }

  /** Deliver what is queued, trying again (as the agent's next cycle would) until nothing is left. */
  async drain(maxAttempts = 50, pauseMs = 100): Promise<void> {
    for (let i = 0; i < maxAttempts && this.pending() > 0; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, pauseMs));
      await new Promise<void>((resolve) => this.agent.flushReports(() => resolve()));
    }
    if (this.pending() > 0) throw new Error(`${this.id.id}: ${this.pending()} report(s) still queued after ${maxAttempts} attempts`);
  }
}

/** Run `f` over `items` with at most `width` at a time. */
export async function inPool<T, R>(items: T[], width: number, f: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i], i);
    }
  }));
  return out;
}

