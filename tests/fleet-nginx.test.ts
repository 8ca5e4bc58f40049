/**
 * Two `signet server --db postgres://…` replicas behind nginx (stream pass-through: the replicas
 * terminate mutual TLS themselves), 240 simulated devices through a staged rollout with
 * failures. The halt comes at the same count as on one server; one replica is SIGKILLed while
 * reports are in flight on it, and no report is lost: the devices' report queues (the real
 * agent's) deliver them again through nginx, which sends them to the other replica. The
 * killed replica is started again on its port, nginx sends it traffic again, and it answers
 * as the other does.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Identity } from '../sdk/keys/device';
import { CHECKIN_CACHE_MS } from '../update-server/checkin-cache';
import { CLI } from './helpers/cli';
import { freePort, nginxAvailable, passThroughConf, startNginx, type Nginx } from './helpers/nginx';
import { sharedPostgres, stopPostgres } from './helpers/postgres';
import { inPool, killReplica, ReportingDevice, startReplica, type Replica } from './helpers/replica-fleet';
import { call, enroll, makeRepoKeys, publishImage, quickDevices, releaseImage, startTestServer, tempDir, type RepoKeys } from './server-fixture';

const DEVICES = 240;
const CONFIRMED = 150;
const FAILED = DEVICES - CONFIRMED;
/** 150 confirmed, then failures: 37/187 = 0.198 is not above 0.2, 38/188 is. */
const HALT = /\(38 failed of 188 finished\)/;
const LIMITS = { 'max-connections-per-address': 4096, 'device-burst': 1000, 'device-rate-per-s': 1000 };

let work: string;
let k: RepoKeys;
let admin: Identity;
let devices: Identity[];
let rootBytes: Uint8Array;
const replicas: Replica[] = [];
let nginx: Nginx | null = null;

beforeAll(async () => {
  work = tempDir('signet-fleet-nginx-');
  k = await makeRepoKeys(work);
  admin = await enroll(k, work, 'ops', true);
  devices = quickDevices(k, Array.from({ length: DEVICES }, (_, i) => 'fleet' + String(i).padStart(3, '0')));
  rootBytes = new Uint8Array(readFileSync(join(k.serverKeys, 'root.json')));
});

afterAll(async () => {
  await nginx?.stop();
  for (const r of replicas) await killReplica(r);
  await stopPostgres();
  rmSync(work, { recursive: true, force: true });
});

interface Hooks {
  /** Deliver the second half of the confirmed reports (`send`); the default just sends them. */
  secondHalf?(send: () => Promise<void>, done: () => number): Promise<void>;
  /** Before the failures are reported. */
  beforeFailures?(): Promise<void>;
}

/**
 * The staged rollout: publish 1.1.0, roll it out to 50 % (halt above a 0.2 failure rate), every
 * device checks in; promote to 100 %, every device checks in again; 150 confirm (in two halves),
 * then 90 fail. Everything through `url`; reports through each device's agent queue.
 */
async function stagedRollout(url: string, hooks: Hooks = {}) {
  const ca = k.ca.certPem;
  await publishImage(k, url, admin, await releaseImage(k, { version: '1.1.0', securityCounter: 2 }), work);
  const created = await call(url + '/api/v1/rollouts', { id: admin, ca,
    body: { board: 'qemu-virt-arm64', version: '1.1.0', percent: 50, haltFailureRate: 0.2, minDevices: 10 } });
  expect(created.status, created.body.toString()).toBe(201);
  const rid = created.json().id as string;
  const checkin = () => inPool(devices, 32, async (d) => {
    const r = await call(url + '/api/v1/checkin', { id: d, ca, body: { board: 'qemu-virt-arm64', version: '1.0.0', securityCounter: 1, slot: 'a' } });
    expect(r.status, r.body.toString()).toBe(200);
    return r.json();
  });
  const staged = await checkin();
  const firstWave = staged.filter((a) => a.offer).length;
  expect(firstWave).toBeGreaterThan(DEVICES / 4);
  expect(firstWave).toBeLessThan((DEVICES * 3) / 4);
  expect(staged.filter((a) => !a.offer).every((a) => a.reason === 'not-in-bucket')).toBe(true);
  const promoted = await call(url + `/api/v1/rollouts/${rid}/promote`, { id: admin, ca, body: { percent: 100 } });
  expect(promoted.status, promoted.body.toString()).toBe(200);
  // The other replica answers check-ins from rollouts it read up to CHECKIN_CACHE_MS ago.
  await new Promise((r) => setTimeout(r, CHECKIN_CACHE_MS + 100));
  const all = await checkin();
  expect(all.filter((a) => !(a.offer && a.offer.rollout === rid)).slice(0, 3)).toEqual([]);
  const target = all[0].offer.target as string;

  const reporters = devices.map((d) => new ReportingDevice(d, url, rootBytes, ca));
  const report = (from: number, to: number, status: 'confirmed' | 'failed') => inPool(reporters.slice(from, to), 32, (r) =>
    r.report({ rollout: rid, target, status, ...(status === 'failed' ? { code: 'E_DIGEST' } : {}) }));
  const half = CONFIRMED / 2;
  await report(0, half, 'confirmed');
  expect(reporters.reduce((n, r) => n + r.deferred, 0)).toBe(0);
  let done = 0;
  const second = () => Promise.all(reporters.slice(half, CONFIRMED).map((r) => r.report({ rollout: rid, target, status: 'confirmed' }).then(() => {
    done++;
  }))).then(() => undefined);
  await (hooks.secondHalf ? hooks.secondHalf(second, () => done) : second());
  // Whatever was not delivered is still queued on its device: deliver it, as the next cycle would.
  const deferred = reporters.reduce((n, r) => n + r.deferred, 0);
  await inPool(reporters, 32, (r) => r.drain());
  await hooks.beforeFailures?.();
  await report(CONFIRMED, DEVICES, 'failed');
  await inPool(reporters, 32, (r) => r.drain());
  const status = (await call(url + '/api/v1/rollouts/' + rid, { id: admin, ca })).json();
  return { rid, status, deferred, sent: DEVICES };
}

describe('two replicas on PostgreSQL behind nginx, one killed mid-run', () => {
  it.skipIf(!nginxAvailable(true))('halt at the same count as one server, no report lost across a SIGKILL, and the replica rejoins', async () => {
    // The reference: one server (SQLite, the default), the same devices and reports.
    const one = await startTestServer(k, join(work, 'single'));
    let single;
    try {
      single = await stagedRollout(one.url);
    } finally {
      await one.close();
    }
    expect(single.deferred).toBe(0);
    expect(single.status.state).toBe('halted');
    expect(single.status.reason).toMatch(HALT);

    const cluster = await sharedPostgres();
    const db = await cluster.createDatabase();
    const [pa, pb, pn] = [await freePort(), await freePort(), await freePort()];
    const replica = (name: string, port: number) => startReplica({ cli: CLI, dataDir: join(work, name), keysDir: k.serverKeys, db, port, limits: LIMITS });
    const [a, b] = await Promise.all([replica('a', pa), replica('b', pb)]);
    replicas.push(a, b);
    nginx = await startNginx(pn, (dir) => passThroughConf(dir, { port: pn, upstreams: [`127.0.0.1:${pa}`, `127.0.0.1:${pb}`] }));
    let b2: Replica | null = null;
    let stalledAt = -1;

    const two = await stagedRollout(nginx.url, {
      // Replica b stops answering (SIGSTOP) while half the confirmations are sent: the ones nginx
      // handed to it hang. Once nothing moves, b is SIGKILLed with them in flight.
      async secondHalf(send, done) {
        b.child.kill('SIGSTOP');
        const wave = send();
        let last = -1;
        let still = 0;
        for (let i = 0; i < 300 && still < 5; i++) {
          await new Promise((r) => setTimeout(r, 200));
          still = done() === last ? still + 1 : 0;
          last = done();
        }
        stalledAt = done();
        await killReplica(b);
        await wave;
      },
      // b comes back on its port; nginx sends it connections again (after its fail_timeout).
      async beforeFailures() {
        b2 = await replica('b', pb);
        replicas.push(b2);
        const ca = k.ca.certPem;
        for (let i = 0; i < 100 && !b2.log.some((l) => l.includes('/api/v1/checkin')); i++) {
          const r = await call(nginx!.url + '/api/v1/checkin', { id: devices[i % DEVICES], ca,
            body: { board: 'qemu-virt-arm64', version: '1.0.0', securityCounter: 1, slot: 'a' } });
          expect(r.status).toBe(200);
          await new Promise((res) => setTimeout(res, 100));
        }
        expect(b2.log.some((l) => l.includes('/api/v1/checkin')), 'nginx never sent the restarted replica a connection').toBe(true);
      },
    });

    // The kill caught confirmations in flight: without the devices' retry they would be lost.
    expect(stalledAt).toBeLessThan(CONFIRMED / 2);
    expect(two.deferred).toBeGreaterThan(0);
    expect(b.child.signalCode).toBe('SIGKILL');

    // The same halt, at the same count, once; and every report sent is in the database.
    expect(two.status.state).toBe('halted');
    expect(two.status.reason).toBe(single.status.reason);
    expect(two.status.counts).toEqual(single.status.counts);
    expect(two.status.counts).toMatchObject({ offered: 0, downloading: 0, confirmed: CONFIRMED, failed: FAILED });
    const c = new pg.Client({ connectionString: db });
    await c.connect();
    try {
      const rows = (await c.query('SELECT device_id, status FROM rollout_devices WHERE rollout_id = $1', [two.rid])).rows;
      expect(rows.length).toBe(two.sent);
      const want = new Map(devices.map((d, i) => [d.id, i < CONFIRMED ? 'confirmed' : 'failed']));
      expect(rows.filter((r) => want.get(r.device_id) !== r.status)).toEqual([]);
      const halts = (await c.query("SELECT COUNT(*)::int AS n FROM audit WHERE action = 'rollout.halt' AND subject = $1", [two.rid])).rows[0].n;
      expect(halts).toBe(1);
      // Through nginx the replicas still named each device by its own certificate.
      const seen = new Map((await c.query('SELECT id, cert_serial FROM devices')).rows.map((r) => [r.id, r.cert_serial]));
      expect(devices.filter((d) => seen.get(d.id) !== d.serial).map((d) => d.id)).toEqual([]);
    } finally {
      await c.end();
    }

    // The restarted replica took part (nginx sent it reports) and answers as the other does.
    const again = b2! as Replica;
    expect(again.log.filter((l) => l.includes('/api/v1/report')).length).toBeGreaterThan(0);
    const ca = k.ca.certPem;
    const fromA = (await call(a.url + '/api/v1/rollouts/' + two.rid, { id: admin, ca })).json();
    const fromB = (await call(again.url + '/api/v1/rollouts/' + two.rid, { id: admin, ca })).json();
    expect(fromB).toEqual(fromA);
    expect(fromA.counts).toEqual(two.status.counts);
    const tsA = await call(a.url + '/tuf/metadata/timestamp.json', { ca, id: devices[0] });
    const tsB = await call(again.url + '/tuf/metadata/timestamp.json', { ca, id: devices[0] });
    expect(tsA.status).toBe(200);
    expect(tsB.body.equals(tsA.body)).toBe(true);
  });
});
