/**
 * Stateless replicas: two real `signet server --db postgres://…` processes on one PostgreSQL
 * (a throw-away cluster). Many devices check in and report through both at once; the rollout's
 * counts stay exact and it halts once, at the same count as one SQLite server given the same
 * reports. Replicas racing to re-sign the timestamp never serve two different files with one
 * version, and each serves what the other wrote. A replica started later migrates nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Identity } from '../sdk/keys/device';
import { parseEnvelope } from '../sdk/ota/metadata';
import { startServer, type Running } from '../update-server/start';
import type { Storage } from '../update-server/storage';
import { MIGRATIONS, PostgresStorage } from '../update-server/storage-postgres';
import { CLI, expectOneLineError } from './helpers/cli';
import { sharedPostgres, stopPostgres, type PgCluster } from './helpers/postgres';
import { call, enroll, makeRepoKeys, publishImage, quickDevices, releaseImage, signetAsync, startTestServer, tempDir, type RepoKeys } from './server-fixture';
import { serverListening } from './helpers/server-child';

let work: string;
let k: RepoKeys;
let admin: Identity;
let cluster: PgCluster;
const children: ChildProcess[] = [];

/** `signet server --db URL` as a child process; resolves with its URL once it listens. */
function startReplica(db: string, name: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [CLI, 'server', '--data', join(work, name), '--keys', k.serverKeys, '--db', db, '--port', '0', '--json',
    '--access-log', 'off', '--limit', 'max-connections-per-address=1000'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SIGNET_PASSPHRASE: '' } });
  children.push(child);
  return serverListening(child);
}

/** Run `f` over `items` with at most `width` at a time. */
async function pool<T, R>(items: T[], width: number, f: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i], i);
    }
  }));
  return out;
}

const CONFIRMED = 60;
const FAILED = 40;
/** 60 confirmed, then failures: 15/75 = 0.2 is not above the threshold, 16/76 is. */
const HALT = /\(16 failed of 76 finished\)/;

/**
 * The staged rollout every scenario runs: publish 1.1.0, a 100 % rollout halting above 0.2,
 * every device checks in (offered), 60 confirm, then 40 fail, all concurrently, spread over `urls`.
 */
async function rolloutScenario(urls: string[], devices: Identity[], storage: () => Promise<Storage>): Promise<{ status: any; halts: number }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const ca = k.ca.certPem;
  await publishImage(k, urls[0], admin, await releaseImage(k, { version: '1.1.0', securityCounter: 2 }), work);
  const created = await call(urls[urls.length - 1] + '/api/v1/rollouts', { id: admin, ca,
    body: { board: 'qemu-virt-arm64', version: '1.1.0', percent: 100, haltFailureRate: 0.2, minDevices: 10 }, headers: { 'sec-fetch-site': 'same-origin' } });
  expect(created.status, created.body.toString()).toBe(201);
  const rid = created.json().id;
  const at = (i: number) => urls[i % urls.length];
  const offers = await pool(devices, 32, async (d, i) => {
    const r = await call(at(i) + '/api/v1/checkin', { id: d, ca, body: { board: 'qemu-virt-arm64', version: '1.0.0', securityCounter: 1, slot: 'a' } });
    expect(r.status, r.body.toString()).toBe(200);
    return r.json().offer;
  });
  expect(offers.every((o) => o && o.rollout === rid)).toBe(true);
  const report = (d: Identity, i: number, status: string) => call(at(i + 1) + '/api/v1/report', { id: d, ca,
    body: { rollout: rid, target: offers[0].target, status, ...(status === 'failed' ? { code: 'E_DIGEST' } : {}) } }).then((r) => {
    expect(r.status, r.body.toString()).toBe(200);
  });
  await pool(devices.slice(0, CONFIRMED), 32, (d, i) => report(d, i, 'confirmed'));
  await pool(devices.slice(CONFIRMED, CONFIRMED + FAILED), 32, (d, i) => report(d, i, 'failed'));
  const status = (await call(urls[0] + '/api/v1/rollouts/' + rid, { id: admin, ca })).json();
  const s = await storage();
  const halts = (await s.auditLog()).filter((a) => a.action === 'rollout.halt' && a.subject === rid).length;
  return { status, halts };
}

beforeAll(async () => {
  work = tempDir('signet-replicas-');
  k = await makeRepoKeys(work);
  admin = await enroll(k, work, 'ops', true);
  cluster = await sharedPostgres();
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await stopPostgres();
  rmSync(work, { recursive: true, force: true });
});

describe('two signet server replicas on one PostgreSQL', () => {
  it('keep a rollout exact under concurrent reports: it halts once, at the same count as one SQLite server', async () => {
    const devices = quickDevices(k, Array.from({ length: CONFIRMED + FAILED }, (_, i) => 'dev' + String(i).padStart(3, '0')));

    // The reference: one server on SQLite, the same reports.
    const one = await startTestServer(k, join(work, 'single'));
    let single;
    try {
      single = await rolloutScenario([one.url], devices, async () => one.storage);
    } finally {
      await one.close();
    }
    expect(single.status.reason).toMatch(HALT);

    // Two replicas, started together on an empty database (they race to migrate and to commit root 1).
    const db = await cluster.createDatabase();
    const [a, b] = await Promise.all([startReplica(db, 'a'), startReplica(db, 'b')]);
    const reader = await PostgresStorage.open(db);
    let two;
    try {
      two = await rolloutScenario([a.url, b.url], devices, async () => reader);
    } finally {
      await reader.close();
    }
    expect(two.status.state).toBe('halted');
    expect(two.status.reason).toBe(single.status.reason);
    expect(two.status.counts).toEqual(single.status.counts);
    expect(two.status.counts).toMatchObject({ confirmed: CONFIRMED, failed: FAILED, offered: 0 });
    expect(two.halts).toBe(1);
    expect(single.halts).toBe(1);

    // Both replicas give the same answers.
    const ca = k.ca.certPem;
    const fromB = (await call(b.url + '/api/v1/rollouts/' + two.status.id, { id: admin, ca })).json();
    expect(fromB).toEqual(two.status);
    const tsA = await call(a.url + '/tuf/metadata/timestamp.json', { ca, id: devices[0] });
    const tsB = await call(b.url + '/tuf/metadata/timestamp.json', { ca, id: devices[0] });
    expect(tsA.status).toBe(200);
    expect(tsB.body.equals(tsA.body)).toBe(true);

    // A replica started later applies no migration and serves the same.
    const c = new pg.Client({ connectionString: db });
    await c.connect();
    const before = (await c.query('SELECT version, applied_at FROM schema_version ORDER BY version')).rows;
    const late = await startReplica(db, 'c');
    expect((await c.query('SELECT version, applied_at FROM schema_version ORDER BY version')).rows).toEqual(before);
    expect(before.map((r) => r.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
    await c.end();
    expect((await call(late.url + '/api/v1/rollouts/' + two.status.id, { id: admin, ca })).json()).toEqual(two.status);
    const tsC = await call(late.url + '/tuf/metadata/timestamp.json', { ca, id: devices[0] });
    expect(tsC.body.equals(tsA.body)).toBe(true);
  });

  it('racing to re-sign the timestamp, never serve two different files with one version, and serve what the other wrote', async () => {
    const db = await cluster.createDatabase();
    // Timestamps that live 2 s: each replica re-signs once half of that passed, on every fetch.
    const start = (name: string) => startServer({ dataDir: join(work, name), keysDir: k.serverKeys, db, port: 0, timestampExpiresS: 2,
      accessLog: 'off', limits: { maxConnectionsPerAddress: 1000 } });
    const replicas: Running[] = await Promise.all([start('ta'), start('tb')]);
    try {
      await publishImage(k, replicas[0].url, admin, await releaseImage(k, { version: '1.2.0', securityCounter: 3 }), work);
      const [device] = quickDevices(k, ['racer']);
      const seen = new Map<number, string>();
      const statuses: number[] = [];
      const deadline = Date.now() + 4000;
      let publishes = 0;
      await Promise.all([
        ...[0, 1, 0, 1, 0, 1, 0, 1].map(async (i) => {
          while (Date.now() < deadline) {
            const r = await call(replicas[i].url + '/tuf/metadata/timestamp.json', { ca: k.ca.certPem, id: device });
            statuses.push(r.status);
            if (r.status !== 200) continue;
            const v = (parseEnvelope(r.body).signed as { version: number }).version;
            const hex = r.body.toString('hex');
            if (!seen.has(v)) seen.set(v, hex);
            expect(seen.get(v) === hex, `two different timestamp.json files with version ${v}`).toBe(true);
          }
        }),
        // Meanwhile releases are published through the other replica (snapshot and timestamp re-signed with them).
        (async () => {
          for (const [v, n] of [['1.3.0', 4], ['1.4.0', 5]] as const) {
            await publishImage(k, replicas[1].url, admin, await releaseImage(k, { version: v, securityCounter: n }), work);
            publishes++;
          }
        })(),
      ]);
      expect(publishes).toBe(2);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(seen.size).toBeGreaterThan(2);
      // Each replica serves the newest timestamp, whichever signed it.
      const a = await replicas[0].app.repository.metadataFile('timestamp.json');
      const b = await replicas[1].app.repository.metadataFile('timestamp.json');
      expect(Buffer.from(a!).equals(Buffer.from(b!))).toBe(true);
    } finally {
      for (const r of replicas) await r.close();
    }
  });

  it('--db refuses what is neither postgres://… nor sqlite before writing anything, and an unreachable database in one line', async () => {
    const bogus = await signetAsync(['server', '--data', join(work, 'never'), '--keys', k.serverKeys, '--db', 'mysql://x/y', '--port', '0']);
    expectOneLineError(bogus, 'E_SERVER_CONFIG');
    expect(existsSync(join(work, 'never'))).toBe(false);
    const gone = await signetAsync(['server', '--data', join(work, 'gone'), '--keys', k.serverKeys, '--db',
      `postgres://signet:hunter2@127.0.0.1:${cluster.port}/no_such_database`, '--port', '0']);
    expectOneLineError(gone, 'E_SERVER_CONFIG');
    expect(gone.stderr).toContain('no_such_database');
    expect(gone.stderr).not.toContain('hunter2');
  });
});
