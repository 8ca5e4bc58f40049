/**
 * Rollouts over real HTTPS: stable per-device buckets, staged percentages, promotion, pause,
 * supersession, and a release that fails on its devices halting itself at its threshold.
 */
import { rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Identity } from '../sdk/keys/device';
import { bucketOf, compareVersions, haltReason } from '../update-server/rollout';
import { emptyCounts } from '../update-server/storage';
import {
  call, enroll, makeRepoKeys, publishImage, quickDevices, releaseImage, startTestServer, tempDir, type RepoKeys, type TestServer,
} from './server-fixture';

let work: string;
let k: RepoKeys;
let srv: TestServer;
let admin: Identity;
let fleet: Identity[];
const BOARD = 'qemu-virt-arm64';
const TARGET = `${BOARD}/test-svc-1.3.0.simg`;

async function checkin(d: Identity, over: Record<string, unknown> = {}) {
  const r = await call(srv.url + '/api/v1/checkin', { ca: k.ca.certPem, id: d, body: { board: BOARD, version: '1.2.0', securityCounter: 3, slot: 'a', ...over } });
  expect(r.status, r.body.toString()).toBe(200);
  return r.json() as { offer: null | { rollout: string; target: string; version: string; sha256: string; path: string }; reason?: string };
}

async function report(d: Identity, rollout: string, status: string, code?: string) {
  return call(srv.url + '/api/v1/report', { ca: k.ca.certPem, id: d, body: { rollout, target: TARGET, status, ...(code ? { code } : {}) } });
}

async function adminCall(path: string, body?: unknown) {
  const r = await call(srv.url + path, { ca: k.ca.certPem, id: admin, body, method: body === undefined ? 'GET' : 'POST' });
  return r;
}

beforeAll(async () => {
  work = tempDir('signet-rollout-');
  k = await makeRepoKeys(work);
  srv = await startTestServer(k, join(work, 'data'));
  admin = await enroll(k, work, 'ops', true);
  fleet = quickDevices(k, Array.from({ length: 40 }, (_, i) => `tv-${String(i + 1).padStart(4, '0')}`));
  await publishImage(k, srv.url, admin, await releaseImage(k, { version: '1.3.0', securityCounter: 4 }), work);
});

afterAll(async () => {
  await srv?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('buckets', () => {
  it('is the first 4 bytes of SHA-256(rollout:device), big-endian, mod 100', () => {
    for (const [r, d] of [['r1', 'tv-0001'], ['r7', 'router-42'], ['r123', 'x']]) {
      const h = createHash('sha256').update(`${r}:${d}`).digest();
      expect(bucketOf(r, d)).toBe(((h[0] * 2 ** 24) + (h[1] << 16) + (h[2] << 8) + h[3]) % 100);
      expect(bucketOf(r, d)).toBe(bucketOf(r, d));
    }
  });

  it('spreads devices evenly and differs between rollouts', () => {
    const ids = Array.from({ length: 2000 }, (_, i) => 'dev-' + i);
    const under30 = ids.filter((d) => bucketOf('r1', d) < 30).length;
    expect(under30).toBeGreaterThan(2000 * 0.25);
    expect(under30).toBeLessThan(2000 * 0.35);
    const same = ids.filter((d) => bucketOf('r1', d) === bucketOf('r2', d)).length;
    expect(same).toBeLessThan(2000 * 0.05);
  });

  it('orders semantic versions by precedence', () => {
    expect(compareVersions('1.2.0', '1.10.0')).toBe(-1);
    expect(compareVersions('1.3.0-rc.1', '1.3.0')).toBe(-1);
    expect(compareVersions('1.3.0-rc.2', '1.3.0-rc.10')).toBe(-1);
    expect(compareVersions('1.3.0+b1', '1.3.0+b2')).toBe(0);
    expect(compareVersions('2.0.0', '1.99.99')).toBe(1);
  });

  it('halts only above the threshold and with enough finished devices', () => {
    const c = (failed: number, confirmed: number) => ({ ...emptyCounts(), failed, confirmed });
    const r = { haltFailureRate: 0.25, minDevices: 4 };
    expect(haltReason(r, c(2, 0))).toBeNull(); // too few
    expect(haltReason(r, c(1, 3))).toBeNull(); // exactly at the threshold
    expect(haltReason(r, c(2, 3))).toMatch(/failure rate 0\.400 \(2 failed of 5 finished\) exceeded the halt threshold 0\.25/);
    expect(haltReason({ haltFailureRate: 0, minDevices: 1 }, c(1, 0))).not.toBeNull();
  });
});

describe('a staged rollout', () => {
  let id: string;

  it('offers the update to exactly the devices whose bucket is below the percentage, every time', async () => {
    for (const d of fleet) expect((await checkin(d)).offer).toBeNull();
    const created = await adminCall('/api/v1/rollouts', { board: BOARD, version: '1.3.0', percent: 25, haltFailureRate: 0.25, minDevices: 4 });
    expect(created.status, created.body.toString()).toBe(201);
    id = created.json().id;
    expect(created.json()).toMatchObject({ state: 'active', percent: 25, target: TARGET, eligible: 40, expected: 10 });
    const expected = fleet.filter((d) => bucketOf(id, d.id) < 25).map((d) => d.id).sort();
    expect(expected.length).toBeGreaterThan(0);
    expect(expected.length).toBeLessThan(40);
    for (let round = 0; round < 2; round++) {
      const offered: string[] = [];
      for (const d of fleet) {
        const r = await checkin(d);
        if (r.offer) {
          offered.push(d.id);
          expect(r.offer).toMatchObject({ rollout: id, target: TARGET, version: '1.3.0' });
          expect(r.offer.path).toBe(`${BOARD}/${r.offer.sha256}.test-svc-1.3.0.simg`);
        } else expect(r.reason).toBe('not-in-bucket');
      }
      expect(offered.sort()).toEqual(expected);
    }
  });

  it('does not offer to devices that are up to date, newer, or whose floor is above the target', async () => {
    const d = fleet.find((x) => bucketOf(id, x.id) < 25)!;
    expect(await checkin(d, { version: '1.3.0' })).toEqual({ offer: null, reason: 'up-to-date' });
    expect(await checkin(d, { version: '2.0.0' })).toEqual({ offer: null, reason: 'newer' });
    expect(await checkin(d, { securityCounter: 9 })).toEqual({ offer: null, reason: 'counter-below-floor' });
    // Devices enrolled for another channel or board are not in this rollout.
    const [beta] = quickDevices(k, ['tv-beta'], { channel: 'beta' });
    const [router] = quickDevices(k, ['router-1'], { board: 'xen-arm32' });
    expect(await checkin(beta, { channel: 'beta' })).toEqual({ offer: null, reason: 'no-rollout' });
    expect(await checkin(router, { board: 'xen-arm32' })).toEqual({ offer: null, reason: 'no-rollout' });
    expect((await checkin(d)).offer).not.toBeNull();
  });

  it('promotes by adding devices, never removing them', async () => {
    const before = fleet.filter((d) => bucketOf(id, d.id) < 25).map((d) => d.id);
    const p = await adminCall(`/api/v1/rollouts/${id}/promote`, { percent: 60 });
    expect(p.json()).toMatchObject({ percent: 60, state: 'active' });
    const offered: string[] = [];
    for (const d of fleet) if ((await checkin(d)).offer) offered.push(d.id);
    expect(offered).toEqual(expect.arrayContaining(before));
    expect(offered.sort()).toEqual(fleet.filter((d) => bucketOf(id, d.id) < 60).map((d) => d.id).sort());
    expect((await adminCall(`/api/v1/rollouts/${id}/promote`, { percent: 10 })).json().error.code).toBe('E_BAD_REQUEST');
  });

  it('accepts reports only from offered devices, for the rollout\'s target, with known statuses', async () => {
    const outside = fleet.find((d) => bucketOf(id, d.id) >= 60)!;
    expect((await report(outside, id, 'confirmed')).json().error.code).toBe('E_BAD_REQUEST');
    const inside = fleet.find((d) => bucketOf(id, d.id) < 60)!;
    const wrongTarget = await call(srv.url + '/api/v1/report', { ca: k.ca.certPem, id: inside, body: { rollout: id, target: 'qemu-virt-arm64/x-1.0.0.simg', status: 'staged' } });
    expect(wrongTarget.json().error.code).toBe('E_BAD_REQUEST');
    expect((await report(inside, id, 'installed')).json().error.code).toBe('E_BAD_REQUEST');
    expect((await report(inside, 'r999', 'staged')).json().error.code).toBe('E_NOT_FOUND');
  });

  it('pauses and resumes', async () => {
    const d = fleet.find((x) => bucketOf(id, x.id) < 60)!;
    expect((await adminCall(`/api/v1/rollouts/${id}/pause`, {})).json().state).toBe('paused');
    expect((await checkin(d)).offer).toBeNull();
    expect((await adminCall(`/api/v1/rollouts/${id}/pause`, {})).json().error.code).toBe('E_ROLLOUT_STATE');
    expect((await adminCall(`/api/v1/rollouts/${id}/resume`, {})).json().state).toBe('active');
    expect((await checkin(d)).offer).not.toBeNull();
  });

  it('halts itself when the failure rate passes the threshold, says why, and stops offering', async () => {
    const inRollout = fleet.filter((d) => bucketOf(id, d.id) < 60);
    expect(inRollout.length).toBeGreaterThanOrEqual(7);
    const [a, b, c, e, f, g] = inRollout;
    for (const d of [a, b, c]) {
      for (const s of ['downloading', 'staged', 'booted-trial', 'confirmed']) expect((await report(d, id, s)).status).toBe(200);
    }
    // 1 failed of 4 finished = 0.25: at the threshold, not above it.
    const r1 = await report(e, id, 'failed', 'E_DIGEST');
    expect(r1.json().rollout.state).toBe('active');
    // 2 failed of 5 = 0.4: above.
    const r2 = await report(f, id, 'failed', 'E_SIGNATURE');
    expect(r2.json().rollout.state).toBe('halted');
    const st = (await adminCall(`/api/v1/rollouts/${id}`)).json();
    expect(st.state).toBe('halted');
    expect(st.reason).toBe('failure rate 0.400 (2 failed of 5 finished) exceeded the halt threshold 0.25');
    expect(st.counts).toMatchObject({ confirmed: 3, failed: 2 });
    expect(st.failureRate).toBeCloseTo(0.4);
    expect(await checkin(g)).toEqual({ offer: null, reason: 'no-rollout' });

    const devices = (await adminCall('/api/v1/devices')).json().devices;
    expect(devices.find((d: { id: string }) => d.id === f.id).lastError).toBe('E_SIGNATURE');

    const metrics = (await call(srv.url + '/metrics', { ca: k.ca.certPem, id: admin })).body.toString();
    expect(metrics).toContain(`signet_rollout_state{rollout="${id}",board="${BOARD}",channel="stable",version="1.3.0",state="halted"} 1`);
    expect(metrics).toMatch(/^signet_rollout_halts_total 1$/m);
    expect(metrics).toMatch(/^signet_update_failures_total 2$/m);

    expect((await adminCall(`/api/v1/rollouts/${id}/promote`, {})).json().error.code).toBe('E_ROLLOUT_STATE');
  });

  it('never offers a failed target to the same device again, even after resume', async () => {
    const inRollout = fleet.filter((d) => bucketOf(id, d.id) < 60);
    const failed = inRollout[3];
    expect((await adminCall(`/api/v1/rollouts/${id}/resume`, {})).json().state).toBe('active');
    expect(await checkin(failed)).toEqual({ offer: null, reason: 'failed-before' });
    expect((await checkin(inRollout[6])).offer).not.toBeNull();
  });

  it('supersedes the active rollout of the same board and channel', async () => {
    const r = await adminCall('/api/v1/rollouts', { board: BOARD, version: '1.3.0', percent: 100, haltFailureRate: 0.5 });
    expect(r.status).toBe(201);
    const list = (await adminCall('/api/v1/rollouts')).json().rollouts;
    expect(list.map((x: { id: string; state: string }) => [x.id, x.state])).toEqual([[r.json().id, 'active'], [id, 'superseded']]);
    expect(list[1].reason).toBe('superseded by rollout ' + r.json().id);
    const missing = await adminCall('/api/v1/rollouts', { board: BOARD, version: '9.9.9', percent: 10, haltFailureRate: 0.1 });
    expect(missing.json().error.code).toBe('E_NOT_FOUND');
  });
});
