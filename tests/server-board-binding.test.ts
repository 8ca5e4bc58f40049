/**
 * A device is enrolled for one board and channel, bound into its certificate. A device of
 * another board cannot pose as a qemu-virt-arm64 device to be offered its release, nor halt
 * that board's rollout with failure reports: every such check-in or report is refused with
 * E_DEVICE_BOARD and writes nothing. A certificate from before the binding is refused too.
 */
import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Identity } from '../sdk/keys/device';
import { issueCertificate } from '../sdk/keys/device-x509';
import { call, enroll, makeRepoKeys, publishImage, quickDevices, releaseImage, startTestServer, tempDir, type RepoKeys, type TestServer } from './server-fixture';

const BOARD = 'qemu-virt-arm64';
const TARGET = `${BOARD}/test-svc-1.3.0.simg`;

let work: string;
let k: RepoKeys;
let srv: TestServer;
let admin: Identity;
let tvs: Identity[];
let router: Identity;
let beta: Identity;
let rolloutId: string;

const checkin = (d: Pick<Identity, 'certPem' | 'keyPem'>, over: Record<string, unknown> = {}) =>
  call(srv.url + '/api/v1/checkin', { ca: k.ca.certPem, id: d, body: { board: BOARD, version: '1.2.0', securityCounter: 3, slot: 'a', ...over } });
const report = (d: Identity, status: string, over: Record<string, unknown> = {}) =>
  call(srv.url + '/api/v1/report', { ca: k.ca.certPem, id: d, body: { rollout: rolloutId, target: TARGET, status, code: 'E_FAKE', ...over } });
const rollout = async () => (await call(srv.url + '/api/v1/rollouts/' + rolloutId, { ca: k.ca.certPem, id: admin })).json();

function rows(sql: string, ...args: unknown[]): unknown[] {
  const db = new Database(join(work, 'data', 'signet.db'), { readonly: true });
  try {
    return db.prepare(sql).all(...args);
  } finally {
    db.close();
  }
}

beforeAll(async () => {
  work = tempDir('signet-binding-');
  k = await makeRepoKeys(work);
  srv = await startTestServer(k, join(work, 'data'));
  admin = await enroll(k, work, 'ops', true);
  tvs = quickDevices(k, ['tv-1', 'tv-2', 'tv-3']);
  [router] = quickDevices(k, ['router-1'], { board: 'xen-arm32' });
  [beta] = quickDevices(k, ['tv-beta'], { channel: 'beta' });
  await publishImage(k, srv.url, admin, await releaseImage(k, { version: '1.3.0', securityCounter: 4 }), work);
  const r = await call(srv.url + '/api/v1/rollouts', { ca: k.ca.certPem, id: admin, body: { board: BOARD, version: '1.3.0', percent: 100, haltFailureRate: 0, minDevices: 1 } });
  rolloutId = r.json().id;
  for (const d of tvs) expect((await checkin(d)).json().offer).not.toBeNull();
});

afterAll(async () => {
  await srv?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('board and channel bound at enrollment', () => {
  it('enrollment writes them into the certificate and identity.json', async () => {
    const d = await enroll(k, work, 'tv-enrolled', false, { board: 'xen-arm32', channel: 'beta' });
    expect(d).toMatchObject({ board: 'xen-arm32', channel: 'beta' });
    const ok = await checkin(d, { board: 'xen-arm32', channel: 'beta' });
    expect(ok.status, ok.body.toString()).toBe(200);
    expect(rows('SELECT board, channel FROM devices WHERE id = ?', 'tv-enrolled')).toEqual([{ board: 'xen-arm32', channel: 'beta' }]);
  });

  it('a device of another board claiming this board is refused and written nowhere', async () => {
    const r = await checkin(router);
    expect(r.status).toBe(403);
    expect(r.json().error.code).toBe('E_DEVICE_BOARD');
    expect(r.json().error.message).toContain('router-1 is enrolled for board xen-arm32, not qemu-virt-arm64');
    expect(rows('SELECT id FROM devices WHERE id = ?', 'router-1')).toEqual([]);
    expect(rows('SELECT * FROM rollout_devices WHERE device_id = ?', 'router-1')).toEqual([]);
  });

  it('a device of another channel claiming this one is refused; without a claim it is in its own channel', async () => {
    const r = await checkin(beta, { channel: 'stable' });
    expect(r.status).toBe(403);
    expect(r.json().error.code).toBe('E_DEVICE_BOARD');
    expect(rows('SELECT id FROM devices WHERE id = ?', 'tv-beta')).toEqual([]);
    const own = await checkin(beta);
    expect(own.json()).toEqual({ offer: null, reason: 'no-rollout' });
    expect(rows('SELECT channel FROM devices WHERE id = ?', 'tv-beta')).toEqual([{ channel: 'beta' }]);
  });

  it('failure reports from devices of another board or channel count toward nothing', async () => {
    for (const d of [router, beta]) {
      const r = await report(d, 'failed');
      expect(r.status).toBe(403);
      expect(r.json().error.code).toBe('E_DEVICE_BOARD');
    }
    // Claiming the rollout's board in the report body does not help either.
    expect((await report(router, 'failed', { board: BOARD })).status).toBe(403);
    const st = await rollout();
    expect(st).toMatchObject({ state: 'active', counts: { failed: 0 } });
    expect(rows("SELECT * FROM rollout_devices WHERE status = 'failed'")).toEqual([]);
    expect(rows('SELECT last_error FROM devices WHERE id = ?', 'tv-beta')).toEqual([{ last_error: null }]);
  });

  it('a device of the rollout\'s board still reports (and its failure halts the rollout)', async () => {
    const r = await report(tvs[0], 'failed');
    expect(r.status, r.body.toString()).toBe(200);
    expect((await rollout()).state).toBe('halted');
  });

  it('a certificate enrolled before boards were bound is refused until re-enrolled (fail closed)', async () => {
    const old = issueCertificate({ caCertPem: k.ca.certPem, caKeyPem: k.ca.keyPem, commonName: 'tv-legacy', role: 'device', days: 30 });
    const id = { certPem: old.certPem, keyPem: old.keyPem! };
    const r = await checkin(id);
    expect(r.status).toBe(403);
    expect(r.json().error.code).toBe('E_DEVICE_BOARD');
    expect(r.json().error.message).toContain('names no board');
    expect(rows('SELECT id FROM devices WHERE id = ?', 'tv-legacy')).toEqual([]);
    const rep = await call(srv.url + '/api/v1/report', { ca: k.ca.certPem, id, body: { rollout: rolloutId, target: TARGET, status: 'failed' } });
    expect(rep.status).toBe(403);
  });
});
