/**
 * One storage suite, two backends: every Storage method against a real SQLite file and a real
 * PostgreSQL (a throw-away cluster from tests/helpers/postgres.ts), with the same answers.
 * Plus what only matters with concurrency: reports racing on one rollout halt it once, at one
 * exact count; offers racing never overwrite; commits racing on one version: one wins.
 */
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { haltReason } from '../update-server/rollout';
import type { RolloutDeviceRecord, Storage, TargetRecord } from '../update-server/storage';
import { MIGRATIONS, PostgresStorage } from '../update-server/storage-postgres';
import { SqliteStorage } from '../update-server/storage-sqlite';
import { sharedPostgres, stopPostgres } from './helpers/postgres';
import { tempDir } from './server-fixture';

let work: string;
beforeAll(() => {
  work = tempDir('signet-storage-');
});
afterAll(async () => {
  await stopPostgres();
  rmSync(work, { recursive: true, force: true });
});

let n = 0;
const BACKENDS: { name: string; open: () => Promise<Storage> }[] = [
  { name: 'sqlite', open: () => SqliteStorage.open(join(work, 'data' + ++n)) },
  { name: 'postgres', open: async () => PostgresStorage.open(await (await sharedPostgres()).createDatabase()) },
];

const enc = (s: string) => new TextEncoder().encode(s);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
async function* chunks(b: Uint8Array, size = 7): AsyncIterable<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}
async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return new Uint8Array(Buffer.concat(parts));
}
function target(name: string, sha256: string, over: Partial<TargetRecord> = {}): TargetRecord {
  return { name, sha256, length: 10, board: 'qemu-virt-arm64', version: '1.0.0', securityCounter: 1, app: 'hello', targetsVersion: 1, createdAt: 100, ...over };
}

describe.each(BACKENDS)('storage on $name', ({ open }) => {
  const opened: Storage[] = [];
  const fresh = async () => {
    const s = await open();
    opened.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
  });

  it('metadata: latest, by version, commit with targets, conflicts refused', async () => {
    const s = await fresh();
    expect(await s.latestMetadata('root')).toBeNull();
    expect(await s.latestVersion('root')).toBe(0);
    await s.commitMetadata([{ role: 'root', version: 1, bytes: enc('r1'), createdAt: 5 }], [], { root: 0 });
    const t = target('b/hello-1.0.0.simg', 'a'.repeat(64));
    await s.commitMetadata([
      { role: 'targets', version: 1, bytes: enc('t1'), createdAt: 6 },
      { role: 'snapshot', version: 1, bytes: enc('s1'), createdAt: 6 },
      { role: 'timestamp', version: 1, bytes: enc('ts1'), createdAt: 6 },
    ], [t], { targets: 0, snapshot: 0, timestamp: 0 });
    await s.commitMetadata([{ role: 'timestamp', version: 2, bytes: enc('ts2'), createdAt: 7 }], [], { timestamp: 1 });
    expect(await s.latestMetadata('timestamp')).toEqual({ role: 'timestamp', version: 2, bytes: enc('ts2'), createdAt: 7 });
    expect(await s.metadata('timestamp', 1)).toEqual({ role: 'timestamp', version: 1, bytes: enc('ts1'), createdAt: 6 });
    expect(await s.metadata('snapshot', 9)).toBeNull();
    expect([await s.latestVersion('timestamp'), await s.latestVersion('targets'), await s.latestVersion('root')]).toEqual([2, 1, 1]);
    expect(await s.latestVersion('snapshot')).toBe(1);
    expect(await s.target(t.name, t.sha256)).toEqual(t);
    expect(await s.target(t.name, 'b'.repeat(64))).toBeNull();
    expect([...await s.referencedBlobs()]).toEqual([t.sha256]);
    // A stale expectation changes nothing, not even the targets it carried.
    await expect(s.commitMetadata([{ role: 'timestamp', version: 2, bytes: enc('other'), createdAt: 8 }],
      [target('b/x-2.0.0.simg', 'c'.repeat(64))], { timestamp: 1 })).rejects.toMatchObject({ code: 'E_CONFLICT' });
    expect((await s.latestMetadata('timestamp'))!.bytes).toEqual(enc('ts2'));
    expect(await s.target('b/x-2.0.0.simg', 'c'.repeat(64))).toBeNull();
  });

  it('commits racing on one version: exactly one wins, the rest get E_CONFLICT', async () => {
    const s = await fresh();
    await s.commitMetadata([{ role: 'timestamp', version: 1, bytes: enc('ts1'), createdAt: 1 }], [], { timestamp: 0 });
    const tries = Array.from({ length: 8 }, (_, i) =>
      s.commitMetadata([{ role: 'timestamp', version: 2, bytes: enc('ts2-' + i), createdAt: 2 }], [], { timestamp: 1 }).then(() => 'ok', (e) => e.code));
    const results = await Promise.all(tries);
    expect(results.filter((r) => r === 'ok')).toHaveLength(1);
    expect(results.filter((r) => r === 'E_CONFLICT')).toHaveLength(7);
  });

  it('blobs: put streamed, existed, mismatch refused, check refuses, range reads, list, remove', async () => {
    const s = await fresh();
    const bytes = new Uint8Array(3000).map((_, i) => (i * 13) & 0xff);
    const h = sha(bytes);
    expect(await s.blobs.put(h, bytes.length, chunks(bytes, 100))).toBe('stored');
    expect(await s.blobs.put(h, bytes.length, chunks(bytes, 1000))).toBe('existed');
    expect(await s.blobs.stat(h)).toEqual({ length: 3000 });
    expect(await s.blobs.readAll(h)).toEqual(bytes);
    expect(await collect(s.blobs.read(h, 10, 2999))).toEqual(bytes.subarray(10));
    expect(await collect(s.blobs.read(h, 0, 0))).toEqual(bytes.subarray(0, 1));
    const other = enc('not the bytes');
    await expect(s.blobs.put(h.replace(/^./, h[0] === '0' ? '1' : '0'), 3000, chunks(bytes))).rejects.toMatchObject({ code: 'E_UPLOAD_MISMATCH' });
    await expect(s.blobs.put(sha(other), 5, chunks(other))).rejects.toMatchObject({ code: 'E_UPLOAD_MISMATCH' });
    await expect(s.blobs.put(sha(other), other.length + 1, chunks(other))).rejects.toMatchObject({ code: 'E_UPLOAD_MISMATCH' });
    await expect(s.blobs.put(sha(other), other.length, chunks(other), () => { throw new Error('refused'); })).rejects.toThrow('refused');
    expect(await s.blobs.stat(sha(other))).toBeNull();
    await expect(s.blobs.stat('nope')).rejects.toMatchObject({ code: 'E_BAD_REQUEST' });
    const list = await s.blobs.list();
    expect(list.map((b) => [b.sha256, b.length])).toEqual([[h, 3000]]);
    expect(Math.abs(list[0].storedAt - Date.now() / 1000)).toBeLessThan(3600);
    await s.blobs.remove(h);
    expect(await s.blobs.stat(h)).toBeNull();
    expect(await s.blobs.list()).toEqual([]);
    expect(await s.blobs.recover()).toEqual({ removed: 0 });
  });

  it('a blob larger than one chunk reads back whole and by range', async () => {
    const s = await fresh();
    const bytes = new Uint8Array(randomBytes(2.5 * 1024 * 1024));
    const h = sha(bytes);
    expect(await s.blobs.put(h, bytes.length, chunks(bytes, 65536))).toBe('stored');
    expect(sha(await s.blobs.readAll(h))).toBe(h);
    const a = 1024 * 1024 - 5;
    const b = 2 * 1024 * 1024 + 17;
    expect(sha(await collect(s.blobs.read(h, a, b)))).toBe(sha(bytes.subarray(a, b + 1)));
  });

  it('devices: check-in upsert keeps first seen and the last error, fleet, counts, errors, listing', async () => {
    const s = await fresh();
    const base = { board: 'qemu-virt-arm64', version: '1.0.0', securityCounter: 1, slot: 'a', channel: 'stable', status: null, code: null, certSerial: '01' };
    const d1 = await s.recordCheckin({ ...base, id: 'd1', at: 100 });
    expect(d1).toEqual({ id: 'd1', board: 'qemu-virt-arm64', version: '1.0.0', securityCounter: 1, slot: 'a', channel: 'stable', status: null,
      firstSeen: 100, lastCheckin: 100, lastError: null, lastErrorAt: null, certSerial: '01', boot: null });
    const e = await s.recordCheckin({ ...base, id: 'd1', version: '1.1.0', code: 'E_DIGEST', status: 'failed', at: 110 });
    expect(e).toMatchObject({ firstSeen: 100, lastCheckin: 110, version: '1.1.0', lastError: 'E_DIGEST', lastErrorAt: 110, status: 'failed' });
    const kept = await s.recordCheckin({ ...base, id: 'd1', version: '1.1.0', at: 120 });
    expect(kept).toMatchObject({ lastCheckin: 120, lastError: 'E_DIGEST', lastErrorAt: 110 });
    await s.recordCheckin({ ...base, id: 'd2', at: 130 });
    await s.recordCheckin({ ...base, id: 'd3', board: 'xen-arm32', channel: 'beta', at: 90 });
    expect(await s.fleet()).toEqual([
      { board: 'qemu-virt-arm64', version: '1.0.0', count: 1 },
      { board: 'qemu-virt-arm64', version: '1.1.0', count: 1 },
      { board: 'xen-arm32', version: '1.0.0', count: 1 },
    ]);
    expect(await s.countDevices('qemu-virt-arm64', 'stable')).toBe(2);
    expect(await s.countDevices('xen-arm32', 'stable')).toBe(0);
    await s.setDeviceError('d2', 'E_SPACE', 140);
    expect(await s.device('d2')).toMatchObject({ lastError: 'E_SPACE', lastErrorAt: 140 });
    expect(await s.device('nobody')).toBeNull();
    expect((await s.devices(10)).map((d) => d.id)).toEqual(['d2', 'd1', 'd3']);
    expect((await s.devices(1)).map((d) => d.id)).toEqual(['d2']);
  });

  it('devices: an unchanged check-in moves only the last-seen time, batched: seen at once here, in the database after the flush', async () => {
    const s = await fresh();
    const base = { board: 'qemu-virt-arm64', version: '1.0.0', securityCounter: 1, slot: 'a', channel: 'stable', status: null, code: null, certSerial: '01' };
    await s.recordCheckin({ ...base, id: 'd1', at: 100 });
    await s.recordCheckin({ ...base, id: 'd2', at: 200 });
    await s.touchCheckin('d1', 500);
    await s.touchCheckin('d1', 300); // an older time never moves it back
    expect(await s.device('d1')).toMatchObject({ lastCheckin: 500, firstSeen: 100 });
    // devices() reads the rows (after writing what is pending): d1's stored time is 500 now.
    expect((await s.devices(10)).map((d) => [d.id, d.lastCheckin])).toEqual([['d1', 500], ['d2', 200]]);
    // A full check-in with an older time than a touched one keeps the newer (another replica's order).
    await s.touchCheckin('d2', 900);
    await s.recordCheckin({ ...base, id: 'd2', version: '1.1.0', at: 800 });
    expect((await s.devices(10)).map((d) => [d.id, d.lastCheckin, d.version])).toEqual([['d2', 900, '1.1.0'], ['d1', 500, '1.0.0']]);
  });

  it('revocations: add, replace, look up, list', async () => {
    const s = await fresh();
    await s.revoke({ id: 'd1', reason: 'lost', at: 5 });
    await s.revoke({ id: 'd0', reason: 'stolen', at: 5 });
    await s.revoke({ id: 'd1', reason: 'found broken', at: 6 });
    expect(await s.revocation('d1')).toEqual({ id: 'd1', reason: 'found broken', at: 6 });
    expect(await s.revocation('d9')).toBeNull();
    expect(await s.revocations()).toEqual([{ id: 'd0', reason: 'stolen', at: 5 }, { id: 'd1', reason: 'found broken', at: 6 }]);
  });

  it('checkinState: the revocation, device, failed-before and offered of one device, equal to the reads one by one', async () => {
    const s = await fresh();
    const base = { board: 'qemu-virt-arm64', version: '1.0.0', securityCounter: 1, slot: 'a', channel: 'stable', status: null, code: null, certSerial: '01' };
    const ro = { board: 'qemu-virt-arm64', channel: 'stable', version: '1.1.0', percent: 100, haltFailureRate: 1, minDevices: 1,
      state: 'active' as const, reason: null, createdAt: 1, updatedAt: 1 };
    const app = await s.createRollout({ ...ro, target: 'qemu-virt-arm64/app-1.1.0.simg' });
    const boot = await s.createRollout({ ...ro, target: 'qemu-virt-arm64/boot-1.1.0.itb' });
    const old = await s.createRollout({ ...ro, target: 'qemu-virt-arm64/app-1.1.0.simg', board: 'xen-arm32' });
    const rollouts = [app, boot];
    // Unknown device: nothing.
    expect(await s.checkinState('d1', rollouts)).toEqual({ revocation: null, device: null, failed: [], offered: [] });
    await s.recordCheckin({ ...base, id: 'd1', at: 100 });
    await s.touchCheckin('d1', 300); // pending in the last-seen batch: merged as device() merges it
    await s.offerRolloutDevice({ rolloutId: app.id, deviceId: 'd1', target: app.target, status: 'offered', code: null, updatedAt: 2 });
    // Failed for the app target in another rollout (any rollout counts, as in hasFailed).
    await s.recordRolloutDevice({ rolloutId: old.id, deviceId: 'd1', target: app.target, status: 'failed', code: 'E_DIGEST', updatedAt: 3 });
    // Another device's rows are not d1's.
    await s.recordRolloutDevice({ rolloutId: boot.id, deviceId: 'd2', target: boot.target, status: 'failed', code: null, updatedAt: 3 });
    const st = await s.checkinState('d1', rollouts);
    expect(st.device).toEqual(await s.device('d1'));
    expect(st.device).toMatchObject({ lastCheckin: 300, firstSeen: 100 });
    expect(st.failed).toEqual([app.target]);
    expect(st.failed.includes(boot.target)).toBe(await s.hasFailed('d1', boot.target));
    expect(st.offered).toEqual([app.id]);
    expect(st.revocation).toBeNull();
    // Only the rollouts asked about.
    expect(await s.checkinState('d1', [])).toMatchObject({ failed: [], offered: [] });
    expect((await s.checkinState('d1', [old])).offered).toEqual([old.id]);
    await s.revoke({ id: 'd1', reason: 'stolen', at: 7 });
    expect((await s.checkinState('d1', rollouts)).revocation).toEqual(await s.revocation('d1'));
    expect((await s.checkinState('d1', rollouts)).revocation).toEqual({ id: 'd1', reason: 'stolen', at: 7 });
    expect((await s.checkinState('d2', rollouts)).revocation).toBeNull();
    // Many at once (read together, read-batch.ts): each gets its own answer, as when asked alone.
    for (let i = 0; i < 20; i++) await s.recordCheckin({ ...base, id: 'm' + i, version: '1.0.' + i, at: 100 + i });
    for (let i = 0; i < 20; i += 3) await s.offerRolloutDevice({ rolloutId: app.id, deviceId: 'm' + i, target: app.target, status: 'offered', code: null, updatedAt: 2 });
    for (let i = 0; i < 20; i += 4) await s.recordRolloutDevice({ rolloutId: boot.id, deviceId: 'm' + i, target: boot.target, status: 'failed', code: null, updatedAt: 2 });
    const asks = Array.from({ length: 24 }, (_, i) => ({ id: 'm' + (i % 22), rollouts: i % 2 ? [app] : [app, boot] }));
    const alone: unknown[] = [];
    for (const q of asks) alone.push(await s.checkinState(q.id, q.rollouts));
    const together = await Promise.all(asks.map((q) => s.checkinState(q.id, q.rollouts)));
    expect(together).toEqual(alone);
    expect(together[4]).toMatchObject({ device: { id: 'm4', version: '1.0.4' }, failed: [boot.target], offered: [boot.id] });
    expect(together[3]).toMatchObject({ device: { id: 'm3' }, failed: [], offered: [app.id] });
    expect(together[20]).toMatchObject({ device: null, failed: [], offered: [] });
  });

  it('rollouts: create supersedes, filter, update with and without a state guard', async () => {
    const s = await fresh();
    const base = { board: 'qemu-virt-arm64', channel: 'stable', version: '1.1.0', target: 't', percent: 10, haltFailureRate: 0.2, minDevices: 3,
      state: 'active' as const, reason: null, createdAt: 10, updatedAt: 10 };
    const r1 = await s.createRollout(base);
    expect(r1).toEqual({ ...base, id: 'r1' });
    const other = await s.createRollout({ ...base, board: 'xen-arm32' });
    const r3 = await s.createRollout({ ...base, version: '1.2.0', createdAt: 20, updatedAt: 20 });
    expect([other.id, r3.id]).toEqual(['r2', 'r3']);
    expect(await s.rollout('r1')).toMatchObject({ state: 'superseded', reason: 'superseded by rollout r3', updatedAt: 20 });
    expect(await s.rollout('r9')).toBeNull();
    expect((await s.rollouts()).map((r) => r.id)).toEqual(['r3', 'r2', 'r1']);
    expect((await s.rollouts({ board: 'qemu-virt-arm64', states: ['active'] })).map((r) => r.id)).toEqual(['r3']);
    expect((await s.rollouts({ channel: 'beta' }))).toEqual([]);
    expect((await s.rollouts({ states: ['active', 'superseded'] })).map((r) => r.id)).toEqual(['r3', 'r2', 'r1']);
    expect(await s.updateRollout('r3', { percent: 50, at: 30 })).toMatchObject({ percent: 50, state: 'active', reason: null, updatedAt: 30 });
    expect(await s.updateRollout('r3', { state: 'paused', reason: 'why', at: 31, from: ['active'] })).toMatchObject({ state: 'paused', reason: 'why', percent: 50 });
    await expect(s.updateRollout('r3', { state: 'paused', reason: 'again', at: 32, from: ['active'] })).rejects.toMatchObject({ code: 'E_ROLLOUT_STATE' });
    expect(await s.rollout('r3')).toMatchObject({ state: 'paused', reason: 'why', updatedAt: 31 });
    expect(await s.updateRollout('r3', { state: 'active', reason: null, at: 33 })).toMatchObject({ state: 'active', reason: null });
    await expect(s.updateRollout('r9', { percent: 1, at: 1 })).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });

  it('rollout devices: offer once, record, counts, has-failed, report and halt', async () => {
    const s = await fresh();
    const r = await s.createRollout({ board: 'b', channel: 'stable', version: '1.1.0', target: 't', percent: 100, haltFailureRate: 0.4,
      minDevices: 2, state: 'active', reason: null, createdAt: 1, updatedAt: 1 });
    const row = (deviceId: string, status: RolloutDeviceRecord['status'], code: string | null = null): RolloutDeviceRecord =>
      ({ rolloutId: r.id, deviceId, target: 't', status, code, updatedAt: 5 });
    expect(await s.offerRolloutDevice(row('d1', 'offered'))).toBe(true);
    expect(await s.offerRolloutDevice(row('d1', 'offered'))).toBe(false);
    await s.recordRolloutDevice(row('d1', 'downloading'));
    expect(await s.offerRolloutDevice(row('d1', 'offered'))).toBe(false);
    expect(await s.rolloutDevice(r.id, 'd1')).toEqual(row('d1', 'downloading'));
    expect(await s.rolloutDevice(r.id, 'd2')).toBeNull();
    expect(await s.recordReport(row('d1', 'confirmed'), haltReason)).toEqual({ rollout: r, halted: null });
    expect(await s.recordReport(row('d2', 'staged'), null)).toEqual({ rollout: r, halted: null });
    const halt = await s.recordReport(row('d3', 'failed', 'E_DIGEST'), haltReason);
    expect(halt.halted).toMatch(/1 failed of 2 finished/);
    expect(halt.rollout).toMatchObject({ state: 'halted', reason: halt.halted });
    // Halted: later reports are counted but halt nothing again.
    expect((await s.recordReport(row('d4', 'failed'), haltReason)).halted).toBeNull();
    expect(await s.rolloutCounts(r.id)).toEqual({ offered: 0, downloading: 0, staged: 1, 'booted-trial': 0, confirmed: 1, failed: 2 });
    expect(await s.hasFailed('d3', 't')).toBe(true);
    expect(await s.hasFailed('d1', 't')).toBe(false);
    await expect(s.recordReport({ ...row('d5', 'failed'), rolloutId: 'r99' }, haltReason)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });

  it('reports racing on one rollout halt it exactly once, at the first count past the threshold', async () => {
    const s = await fresh();
    const r = await s.createRollout({ board: 'b', channel: 'stable', version: '1.1.0', target: 't', percent: 100, haltFailureRate: 0.2,
      minDevices: 10, state: 'active', reason: null, createdAt: 1, updatedAt: 1 });
    const report = (d: string, status: 'confirmed' | 'failed') =>
      s.recordReport({ rolloutId: r.id, deviceId: d, target: 't', status, code: null, updatedAt: 2 }, haltReason);
    await Promise.all(Array.from({ length: 40 }, (_, i) => report('ok' + i, 'confirmed')));
    // 40 confirmed: 10 failures make 10/50 = 0.2 (not above), the 11th makes 11/51 > 0.2.
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => report('bad' + i, 'failed')));
    const halts = results.filter((x) => x.halted);
    expect(halts).toHaveLength(1);
    expect(halts[0].halted).toMatch(/\(11 failed of 51 finished\)/);
    expect(await s.rolloutCounts(r.id)).toMatchObject({ confirmed: 40, failed: 30 });
  });

  it('audit: append, since, limit (newest kept, oldest first)', async () => {
    const s = await fresh();
    for (let i = 0; i < 5; i++) await s.audit({ at: 100 + i, actor: 'ops', action: 'rollout.pause', subject: 'r' + i, detail: { i } });
    const all = await s.auditLog();
    expect(all.map((a) => a.subject)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    expect(all[0]).toMatchObject({ at: 100, actor: 'ops', action: 'rollout.pause', detail: { i: 0 } });
    expect(all[1].seq).toBeGreaterThan(all[0].seq);
    expect((await s.auditLog({ since: 103 })).map((a) => a.subject)).toEqual(['r3', 'r4']);
    expect((await s.auditLog({ limit: 2 })).map((a) => a.subject)).toEqual(['r3', 'r4']);
  });

  it('exclusive: runs its writers one at a time', async () => {
    const s = await fresh();
    let inside = 0;
    let most = 0;
    const w = () => s.exclusive(async () => {
      inside++;
      most = Math.max(most, inside);
      await new Promise((r) => setTimeout(r, 5));
      inside--;
    });
    // The repository queues its own writers; across replicas (PostgreSQL) the storage's lock does.
    if (s instanceof PostgresStorage) {
      await Promise.all([w(), w(), w()]);
      expect(most).toBe(1);
    } else {
      await w();
      expect(most).toBe(1);
    }
  });
});

/** Each backend with a raw connection of its own to the same database, to make it refuse a write. */
const RAW: { name: string; open: () => Promise<{ s: Storage; exec(sql: string): Promise<void>; close(): Promise<void> }> }[] = [
  {
    name: 'sqlite', open: async () => {
      const dir = join(work, 'raw' + ++n);
      const s = await SqliteStorage.open(dir);
      const db = new Database(join(dir, 'signet.db'));
      return { s, exec: async (q) => void db.exec(q), close: async () => { db.close(); await s.close(); } };
    },
  },
  {
    name: 'postgres', open: async () => {
      const url = await (await sharedPostgres()).createDatabase();
      const s = await PostgresStorage.open(url);
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      return { s, exec: async (q) => void (await c.query(q)), close: async () => { await c.end(); await s.close(); } };
    },
  },
];
/** An audit table that refuses `rollout.halt` rows (a full disk, a lost connection: the write fails). */
const REFUSE_HALT_AUDIT: Record<string, string> = {
  sqlite: `CREATE TRIGGER refuse_halt_audit BEFORE INSERT ON audit WHEN NEW.action = 'rollout.halt' BEGIN SELECT RAISE(ABORT, 'audit refused'); END`,
  postgres: `CREATE FUNCTION refuse_halt_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      IF NEW.action = 'rollout.halt' THEN RAISE EXCEPTION 'audit refused'; END IF; RETURN NEW; END $$;
    CREATE TRIGGER refuse_halt_audit BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION refuse_halt_audit()`,
};
const ALLOW_HALT_AUDIT: Record<string, string> = {
  sqlite: 'DROP TRIGGER refuse_halt_audit',
  postgres: 'DROP TRIGGER refuse_halt_audit ON audit',
};

describe.each(RAW)('a halt and its audit row on $name', ({ name, open }) => {
  it('are written together: when the audit row cannot be written, neither the halt nor the report is', async () => {
    const { s, exec, close } = await open();
    try {
      const r = await s.createRollout({ board: 'b', channel: 'stable', version: '1.1.0', target: 't', percent: 100, haltFailureRate: 0.4,
        minDevices: 1, state: 'active', reason: null, createdAt: 1, updatedAt: 1 });
      const report: RolloutDeviceRecord = { rolloutId: r.id, deviceId: 'd1', target: 't', status: 'failed', code: 'E_DIGEST', updatedAt: 5 };
      const audit = (reason: string) => ({ at: 5, actor: 'server', action: 'rollout.halt' as const, subject: r.id, detail: { reason, lastReport: 'd1' } });
      await exec(REFUSE_HALT_AUDIT[name]);
      await expect(s.recordReport(report, haltReason, audit)).rejects.toThrow(/audit refused/);
      expect(await s.rollout(r.id)).toMatchObject({ state: 'active', reason: null });
      expect(await s.rolloutDevice(r.id, 'd1')).toBeNull();
      expect(await s.auditLog()).toEqual([]);
      // The device reports again (its queue kept the report): now the halt and its row go in together.
      await exec(ALLOW_HALT_AUDIT[name]);
      const halt = await s.recordReport(report, haltReason, audit);
      expect(halt.rollout).toMatchObject({ state: 'halted', reason: halt.halted });
      expect((await s.auditLog()).map((a) => [a.at, a.actor, a.action, a.subject, a.detail]))
        .toEqual([[5, 'server', 'rollout.halt', r.id, { reason: halt.halted, lastReport: 'd1' }]]);
    } finally {
      await close();
    }
  });
});

describe('PostgreSQL schema migrations', () => {
  it('are applied once, by one of several replicas opening together; later ones apply nothing', async () => {
    const url = await (await sharedPostgres()).createDatabase();
    const all = await Promise.all([1, 2, 3, 4].map(() => PostgresStorage.open(url)));
    const applied = all.map((s) => s.migrated);
    const every = MIGRATIONS.map((_, i) => i + 1);
    expect(applied.filter((a) => a.length > 0)).toEqual([every]);
    const later = await PostgresStorage.open(url);
    expect(later.migrated).toEqual([]);
    expect(await later.schemaVersion()).toBe(MIGRATIONS.length);
    for (const s of [...all, later]) await s.close();
  });

  it('a database with a newer schema is refused', async () => {
    const url = await (await sharedPostgres()).createDatabase();
    (await PostgresStorage.open(url)).close();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query('INSERT INTO schema_version (version) VALUES (99)');
    await c.end();
    await expect(PostgresStorage.open(url)).rejects.toMatchObject({ code: 'E_SERVER_CONFIG', message: expect.stringMatching(/schema 99, newer/) });
  });

  it('an unreachable database is a one-line E_SERVER_CONFIG without the password', async () => {
    const c = await sharedPostgres();
    const err = await PostgresStorage.open(`postgres://signet:hunter2@127.0.0.1:${c.port}/no_such_db`).catch((e) => e);
    expect(err).toMatchObject({ code: 'E_SERVER_CONFIG' });
    expect(err.message).not.toContain('hunter2');
    expect(err.message).not.toContain('\n');
  });
});
