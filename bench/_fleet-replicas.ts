/**
 * Part of `npm run bench -- fleet` (bench/fleet.ts): fleet scale on PostgreSQL: `signet server --db postgres://…` replicas on one throw-away
 * cluster (tests/helpers/postgres.ts), 200 simulated devices (each its own certificate and
 * keep-alive mutual-TLS connection) checking in 25 times each, spread over the replicas.
 *
 *   fleet.checkin_per_s_1replica   check-ins/s, every device on one replica
 *   fleet.checkin_per_s_2replicas  check-ins/s, devices alternating over two replicas
 *   fleet.checkin_p99_ms           99th percentile check-in latency with two replicas
 *   fleet.replicas_2_vs_1          the ratio of the two rates (the anchor: same run, same clients)
 *   fleet.lost_reports             reports the devices sent that the database does not hold, when
 *                                  one of the two replicas behind nginx (stream pass-through) is
 *                                  SIGKILLed half-way through 200 reports, 50 in flight (goal 0: each
 *                                  device's report queue, the real agent's, delivers again)
 *   fleet.reports_redelivered      deliveries the kill cut off (and the queues sent again): the
 *                                  kill hit reports in flight, so lost_reports = 0 means something
 *
 * Each figure is the best of rounds that alternate between one and two replicas. On a 2-core
 * machine the replicas, PostgreSQL and the clients share the same cores: the ratio says what a
 * second replica costs or gains here, not on a machine per replica.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { enrollIdentity, loadIdentity, loadVendorCa } from '../sdk/keys/device';
import { issueCertificate } from '../sdk/keys/device-x509';
import { loadSigner } from '../sdk/keys/keyfile';
import { initKeys } from '../sdk/keys/keyset';
import { AdminClient } from '../sdk/ota/repository-http';
import { publishRelease } from '../sdk/ota/repository-publish';
import { CHECKIN_CACHE_MS } from '../update-server/checkin-cache';
import { prepareServerKeys } from '../update-server/start';
import { makeImage } from '../tests/helpers/fixtures';
import { nginxAvailable, passThroughConf, startNginx } from '../tests/helpers/nginx';
import { freePort } from '../tests/helpers/ports';
import { startPostgres } from '../tests/helpers/postgres';
import { inPool, ReportingDevice } from '../tests/helpers/replica-fleet';
import pg from 'pg';
import type { Figures } from './_lib';
import { projectRoot } from './_server';

const DEVICES = 200;
const CHECKINS_PER_DEVICE = 25;
const ROUNDS = 2;

interface Phase { wallMs: number; latencies: number[] }

function once(agent: Agent, url: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.setTimeout(60_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Every device checks in `count` times back to back against `urls[i % urls.length]`; all at once. */
async function phase(agents: Agent[][], urls: string[], count: number, body: string): Promise<Phase> {
  const target = (i: number) => ({ agent: agents[i % urls.length][i], url: urls[i % urls.length] + '/api/v1/checkin' });
  await Promise.all(agents[0].map((_, i) => once(target(i).agent, target(i).url, body))); // handshakes before measuring
  const latencies: number[] = [];
  const t0 = process.hrtime.bigint();
  await Promise.all(agents[0].map(async (_, i) => {
    const { agent, url } = target(i);
    for (let n = 0; n < count; n++) {
      const s = process.hrtime.bigint();
      const st = await once(agent, url, body);
      if (st !== 200) throw new Error(`check-in answered ${st}`);
      latencies.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
  }));
  return { wallMs: Number(process.hrtime.bigint() - t0) / 1e6, latencies };
}

function p99(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(s.length * 0.99) - 1)];
}

function replica(work: string, name: string, serverKeys: string, db: string): Promise<{ child: ChildProcess; url: string }> {
  const args = ['server', '--data', join(work, name), '--keys', serverKeys, '--db', db, '--port', '0', '--json', '--access-log', 'off',
    '--limit', 'device-burst=1000000', '--limit', 'device-rate-per-s=1000000', '--limit', 'max-connections-per-address=4096'];
  const child = spawn(process.execPath, [join(projectRoot(), 'sdk/cli/signet.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SIGNET_PASSPHRASE: '' } });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4096)));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, url: (JSON.parse(out.slice(0, nl)) as { url: string }).url });
    });
    child.on('exit', (code) => reject(new Error(`signet server exited (${code}): ${err}`)));
  });
}

export async function replicaFigures(): Promise<Figures> {
  const work = mkdtempSync(join(tmpdir(), 'signet-bench-fleet-'));
  const cluster = await startPostgres();
  const children: ChildProcess[] = [];
  try {
    const keys = join(work, 'keys');
    const serverKeys = join(work, 'server-keys');
    await initKeys({ dir: keys });
    await prepareServerKeys({ keysDir: keys, outDir: serverKeys });
    const ca = await loadVendorCa(keys);
    await enrollIdentity({ id: 'bench-admin', keysDir: keys, outDir: join(work, 'admin'), admin: true });
    const db = await cluster.createDatabase('fleet');
    const replicas = await Promise.all([replica(work, 'a', serverKeys, db), replica(work, 'b', serverKeys, db)]);
    children.push(...replicas.map((r) => r.child));
    const admin = new AdminClient(replicas[0].url, loadIdentity(join(work, 'admin')));
    const image = await makeImage({ version: '1.3.0', securityCounter: 4, signers: [await loadSigner(join(keys, 'targets-1.key'))] });
    writeFileSync(join(work, 'app.simg'), image);
    await publishRelease({ imagePath: join(work, 'app.simg'), keysDir: keys, transport: admin });
    await admin.json('POST', '/api/v1/rollouts', { board: 'qemu-virt-arm64', version: '1.3.0', percent: 50, haltFailureRate: 0.5 });

    const first = issueCertificate({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, commonName: 'dev-0', role: 'device', days: 2, board: 'qemu-virt-arm64', channel: 'stable' });
    const publicKeyPem = createPublicKey(first.keyPem!).export({ format: 'pem', type: 'spki' }) as string;
    const certs = [first.certPem];
    for (let i = 1; i < DEVICES; i++) {
      certs.push(issueCertificate({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, commonName: 'dev-' + i, role: 'device', days: 2, publicKeyPem, board: 'qemu-virt-arm64', channel: 'stable' }).certPem);
    }
    // One keep-alive agent per device and replica.
    const agents = replicas.map(() => certs.map((cert) => new Agent({ keepAlive: true, maxSockets: 1, cert, key: first.keyPem, ca: ca.certPem })));
    const body = JSON.stringify({ board: 'qemu-virt-arm64', version: '1.2.0', securityCounter: 3, slot: 'a' });
    let one: Phase | null = null;
    let two: Phase | null = null;
    const best = (a: Phase | null, b: Phase) => (!a || b.wallMs < a.wallMs ? b : a);
    for (let round = 0; round < ROUNDS; round++) {
      one = best(one, await phase(agents.slice(0, 1), [replicas[0].url], CHECKINS_PER_DEVICE, body));
      two = best(two, await phase(agents, replicas.map((r) => r.url), CHECKINS_PER_DEVICE, body));
    }
    for (const a of agents.flat()) a.destroy();
    const perS = (p: Phase) => p.latencies.length / (p.wallMs / 1000);
    const lost = nginxAvailable(true)
      ? await lostReports({ work, db, replicas, admin, keys, ca, certs, keyPem: first.keyPem! })
      : null;
    return {
      ...(lost ? {
        lost_reports: { value: lost.lost, unit: 'reports' },
        reports_redelivered: { value: lost.redelivered, unit: 'reports' },
      } : {}),
      checkin_per_s_1replica: { value: perS(one!), unit: 'req/s' },
      checkin_per_s_2replicas: { value: perS(two!), unit: 'req/s' },
      checkin_p99_ms: { value: p99(two!.latencies), unit: 'ms' },
      replicas_2_vs_1: { value: perS(two!) / perS(one!), unit: 'ratio' },
    };
  } finally {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        await new Promise<void>((resolve) => {
          c.once('exit', () => resolve());
          c.kill('SIGTERM');
        });
      }
    }
    await cluster.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * fleet.lost_reports: a rollout of 1.3.0 to every device, each checks in through nginx (offered),
 * then all 200 report `confirmed` through nginx, 50 at a time; when half of them are done, replica
 * b is SIGKILLed. Each device's agent queue keeps what did not get through and delivers it again
 * (through nginx, now only to a). Lost = reports sent − the rows in the database that say so.
 */
async function lostReports(o: {
  work: string; db: string; replicas: { child: ChildProcess; url: string }[]; admin: AdminClient; keys: string;
  ca: { certPem: string }; certs: string[]; keyPem: string;
}): Promise<{ lost: number; redelivered: number }> {
  const port = await freePort();
  const upstreams = o.replicas.map((r) => new URL(r.url).host);
  const nginx = await startNginx(port, (dir) => passThroughConf(dir, { port, upstreams }));
  try {
    const created = await o.admin.json('POST', '/api/v1/rollouts', { board: 'qemu-virt-arm64', version: '1.3.0', percent: 100, haltFailureRate: 1 }) as { id: string; target: string };
    const rootBytes = new Uint8Array(readFileSync(join(o.keys, 'root.json')));
    const devices = o.certs.map((certPem, i) => new ReportingDevice({ id: 'dev-' + i, certPem, keyPem: o.keyPem, board: 'qemu-virt-arm64' }, nginx.url, rootBytes, o.ca.certPem));
    const agent = new Agent({ keepAlive: false });
    const body = JSON.stringify({ board: 'qemu-virt-arm64', version: '1.2.0', securityCounter: 3, slot: 'a' });
    // The other replica offers from the active rollouts it read up to CHECKIN_CACHE_MS ago: wait
    // that out, so that every device below is offered (a report on a rollout that offered the
    // device nothing is refused, and would count as lost here without being a lost report).
    await new Promise((r) => setTimeout(r, CHECKIN_CACHE_MS + 100));
    for (let i = 0; i < o.certs.length; i += 20) {
      await Promise.all(o.certs.slice(i, i + 20).map((cert) => new Promise<void>((resolve, reject) => {
        const req = request(nginx.url + '/api/v1/checkin', { method: 'POST', agent, cert, key: o.keyPem, ca: o.ca.certPem,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
          const parts: Buffer[] = [];
          res.on('data', (b: Buffer) => parts.push(b));
          res.on('end', () => {
            if (res.statusCode !== 200) return reject(new Error('check-in answered ' + res.statusCode));
            // Every device must be offered the rollout: only then is each report one the server must keep.
            const answer = JSON.parse(Buffer.concat(parts).toString('utf8')) as { offer?: { rollout?: string } | null };
            if (answer.offer?.rollout !== created.id) return reject(new Error('check-in offered no ' + created.id + ': ' + Buffer.concat(parts).toString('utf8').slice(0, 200)));
            resolve();
          });
        });
        req.on('error', reject);
        req.end(body);
      })));
    }
    let done = 0;
    const victim = o.replicas[1].child;
    const killed = new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (done < devices.length / 2) return;
        clearInterval(t);
        victim.once('exit', () => resolve());
        victim.kill('SIGKILL');
      }, 5);
    });
    // A steady stream (50 in flight at a time), so the kill lands with reports under way on b.
    await inPool(devices, 50, (d) => d.report({ rollout: created.id, target: created.target, status: 'confirmed' }).then(() => void done++));
    await killed;
    const redelivered = devices.reduce((n, d) => n + d.deferred, 0);
    for (const d of devices) await d.drain(100, 100);
    const c = new pg.Client({ connectionString: o.db });
    await c.connect();
    try {
      const held = (await c.query("SELECT COUNT(*)::int AS n FROM rollout_devices WHERE rollout_id = $1 AND status = 'confirmed'", [created.id])).rows[0].n as number;
      return { lost: devices.length - held, redelivered };
    } finally {
      await c.end();
    }
  } finally {
    await nginx.stop();
  }
}
