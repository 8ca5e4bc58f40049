/**
 * The audit log: every admin action taken with the real CLI against a real server (publish,
 * rollout create / pause / resume / promote, device revoke with its reason) and what the
 * server did on its own (an enrollment seen at first check-in, a halt) is a row in the
 * database; `signet server audit` prints them (text and --json, --since) and the dashboard
 * shows them. HEAD requests are not counted as downloads.
 */
import Database from 'better-sqlite3';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Identity } from '../sdk/keys/device';
import { parseSince } from '../sdk/cli/commands/server';
import { SqliteStorage } from '../update-server/storage-sqlite';
import { expectOneLineError } from './helpers/cli';
import { call, enroll, makeRepoKeys, releaseImage, signetAsync, startTestServer, tempDir, type RepoKeys, type TestServer } from './server-fixture';

let work: string;
let k: RepoKeys;
let srv: TestServer;
let adminDir: string;
let admin: Identity;
let device: Identity;
let base: string[];
let startedAt: number;

const ok = async (args: string[]) => {
  const r = await signetAsync(args);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
};

beforeAll(async () => {
  work = tempDir('signet-audit-');
  k = await makeRepoKeys(work);
  srv = await startTestServer(k, join(work, 'data'));
  adminDir = join(work, 'admin');
  await ok(['device', 'enroll', '--admin', '--id', 'alice', '--keys', k.keys, '--out', adminDir]);
  admin = (await import('../sdk/keys/device')).loadIdentity(adminDir);
  device = await enroll(k, work, 'tv-0001');
  base = ['--server', srv.url, '--admin', adminDir];
  startedAt = Math.floor(Date.now() / 1000);

  const img = join(work, 'app-1.3.0.simg');
  writeFileSync(img, await releaseImage(k, { version: '1.3.0', securityCounter: 4 }));
  expect((await call(srv.url + '/api/v1/checkin', { ca: k.ca.certPem, id: device, body: { board: 'qemu-virt-arm64', version: '1.2.0', securityCounter: 3, slot: 'a' } })).status).toBe(200);
  await ok(['publish', img, '--keys', k.keys, ...base]);
  await ok(['rollout', 'create', '--board', 'qemu-virt-arm64', '--version', '1.3.0', '--percent', '10', '--halt-failure-rate', '0.05', ...base]);
  await ok(['rollout', 'pause', 'r1', ...base]);
  await ok(['rollout', 'resume', 'r1', ...base]);
  await ok(['rollout', 'promote', 'r1', '--percent', '60', ...base]);
  await ok(['device', 'revoke', '--id', 'tv-0001', '--reason', 'stolen from the lab', ...base]);
});

afterAll(async () => {
  await srv?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('audit log', () => {
  it('records who did what, to what, with the reason, in order', async () => {
    const r = await ok(['server', 'audit', '--data', join(work, 'data'), '--json']);
    const log = JSON.parse(r.stdout) as { actor: string; action: string; subject: string; detail: Record<string, unknown>; at: number }[];
    expect(log.map((x) => [x.actor, x.action, x.subject])).toEqual([
      ['vendor-ca', 'device.enroll', 'tv-0001'],
      ['alice', 'blob.upload', expect.stringMatching(/^[0-9a-f]{64}$/)],
      ['alice', 'publish', 'targets v1'],
      ['alice', 'rollout.create', 'r1'],
      ['alice', 'rollout.pause', 'r1'],
      ['alice', 'rollout.resume', 'r1'],
      ['alice', 'rollout.promote', 'r1'],
      ['alice', 'device.revoke', 'tv-0001'],
    ]);
    expect(log[0].detail).toMatchObject({ board: 'qemu-virt-arm64', channel: 'stable', serial: device.serial });
    expect(log[2].detail).toMatchObject({ added: [{ name: 'qemu-virt-arm64/test-svc-1.3.0.simg' }] });
    expect(log[3].detail).toMatchObject({ board: 'qemu-virt-arm64', channel: 'stable', version: '1.3.0', percent: 10, haltFailureRate: 0.05 });
    expect(log[4].detail).toEqual({ from: 'active', state: 'paused' });
    expect(log[6].detail).toEqual({ from: 10, percent: 60 });
    expect(log[7].detail).toEqual({ reason: 'stolen from the lab' });
    for (const x of log) expect(x.at).toBeGreaterThanOrEqual(startedAt - 1);
  });

  it('prints one line per record, and --since filters', async () => {
    const r = await ok(['server', 'audit', '--data', join(work, 'data')]);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(8);
    expect(lines[7]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ {2}alice +device\.revoke +tv-0001 +reason: stolen from the lab$/);
    expect(lines[3]).toMatch(/alice +rollout\.create +r1 +qemu-virt-arm64\/stable 1\.3\.0 at 10%/);
    const later = await ok(['server', 'audit', '--data', join(work, 'data'), '--since', String(Math.floor(Date.now() / 1000) + 3600)]);
    expect(later.stdout).toMatch(/^no audit records since /);
    const recent = await ok(['server', 'audit', '--data', join(work, 'data'), '--since', '1h', '--json']);
    expect(JSON.parse(recent.stdout)).toHaveLength(8);
  });

  it('refuses a bad --since, a folder without a database, and revoke without a reason, each in one line', async () => {
    expectOneLineError(await signetAsync(['server', 'audit', '--data', join(work, 'data'), '--since', 'yesterday']), 'E_USAGE');
    expectOneLineError(await signetAsync(['server', 'audit', '--data', join(work, 'nothing-here')]), 'E_SERVER_CONFIG');
    expectOneLineError(await signetAsync(['device', 'revoke', '--id', 'tv-0002', ...base]), 'E_USAGE');
    const empty = await call(srv.url + '/api/v1/devices/tv-0002/revoke', { ca: k.ca.certPem, id: admin, body: { reason: '  ' } });
    expect(empty.status).toBe(400);
    expect((await srv.storage.auditLog()).filter((a) => a.subject === 'tv-0002')).toEqual([]);
  });

  it('parses --since as a date, a time, unix seconds or an age', () => {
    expect(parseSince('2026-01-31', 0)).toBe(Date.UTC(2026, 0, 31) / 1000);
    expect(parseSince('2026-01-31T12:00Z', 0)).toBe(Date.UTC(2026, 0, 31, 12) / 1000);
    expect(parseSince('2026-01-31T12:00', 0)).toBe(Date.UTC(2026, 0, 31, 12) / 1000);
    expect(parseSince('1700000000', 0)).toBe(1_700_000_000);
    expect(parseSince('7d', 1_000_000)).toBe(1_000_000 - 7 * 86400);
    expect(() => parseSince('2026-13-45', 0)).toThrow();
  });

  it('shows on the dashboard, newest first', async () => {
    const d = await call(srv.url + '/dashboard', { ca: k.ca.certPem, id: admin });
    expect(d.status).toBe(200);
    const html = d.body.toString();
    const section = html.slice(html.indexOf('id="audit"'));
    expect(section).toContain('<td>alice</td><td>device.revoke</td><td>tv-0001</td><td>reason: stolen from the lab</td>');
    expect(section.indexOf('device.revoke')).toBeLessThan(section.indexOf('rollout.create'));
  });
});

describe('a database from before the audit log (schema 1)', () => {
  it('is upgraded in place when the server opens it; until then `server audit` says so in one line', async () => {
    const dir = join(work, 'v1-data');
    await (await SqliteStorage.open(dir)).close();
    const db = new Database(join(dir, 'signet.db'));
    db.exec('DROP TABLE audit');
    // Nor the devices' boot image columns (schema 3).
    for (const c of ['boot_version', 'boot_counter', 'boot_slot']) db.exec(`ALTER TABLE devices DROP COLUMN ${c}`);
    db.pragma('user_version = 1');
    db.close();
    expectOneLineError(await signetAsync(['server', 'audit', '--data', dir]), 'E_SERVER_CONFIG');
    const s = await SqliteStorage.open(dir);
    await s.audit({ at: 1, actor: 'ops', action: 'device.revoke', subject: 'tv-9', detail: { reason: 'r' } });
    await s.close();
    const check = new Database(join(dir, 'signet.db'), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(3);
    expect((check.prepare('PRAGMA table_info(devices)').all() as { name: string }[]).map((c) => c.name)).toEqual(expect.arrayContaining(['boot_version', 'boot_counter', 'boot_slot']));
    check.close();
    expect(JSON.parse((await ok(['server', 'audit', '--data', dir, '--json'])).stdout)).toMatchObject([{ actor: 'ops', subject: 'tv-9' }]);
  });
});

describe('download metrics', () => {
  it('counts GETs of metadata and targets, not HEADs', async () => {
    const metric = async (kind: string) => {
      const text = (await call(srv.url + '/metrics', { ca: k.ca.certPem, id: admin })).body.toString();
      return Number(new RegExp(`^signet_downloads_total\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(text)![1]);
    };
    const targets = (await call(srv.url + '/api/v1/targets', { ca: k.ca.certPem, id: admin })).json().targets.signed.targets;
    const sha = targets['qemu-virt-arm64/test-svc-1.3.0.simg'].hashes.sha256;
    const targetUrl = `${srv.url}/tuf/targets/qemu-virt-arm64/${sha}.test-svc-1.3.0.simg`;
    const [m0, t0] = [await metric('metadata'), await metric('target')];
    for (let i = 0; i < 3; i++) {
      expect((await call(targetUrl, { ca: k.ca.certPem, id: admin, method: 'HEAD' })).status).toBe(200);
      expect((await call(srv.url + '/tuf/metadata/1.root.json', { ca: k.ca.certPem, id: admin, method: 'HEAD' })).status).toBe(200);
    }
    expect([await metric('metadata'), await metric('target')]).toEqual([m0, t0]);
    expect((await call(targetUrl, { ca: k.ca.certPem, id: admin })).status).toBe(200);
    expect((await call(srv.url + '/tuf/metadata/1.root.json', { ca: k.ca.certPem, id: admin })).status).toBe(200);
    expect([await metric('metadata'), await metric('target')]).toEqual([m0 + 1, t0 + 1]);
  });
});
