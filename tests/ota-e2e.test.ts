// End to end on loopback: the real update server (SQLite + blob folder, HTTPS with mutual TLS,
// keys from `keys init`), releases published with offline-signed targets metadata, and 20
// simulated devices (real boot stage on flash files, real agent, one device certificate each).
// A 50 % rollout updates exactly the devices whose bucket is below 50 — about half — through
// trial boot and confirm; promoting to 100 % updates the rest; a release that fails on its
// devices halts its rollout at the threshold, and no further device takes it.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import type { Identity } from '../sdk/keys/device';
import { SimulatedDevice } from '../sdk/ota/device';
import { AdminClient } from '../sdk/ota/repository-http';
import { bucketOf } from '../update-server/rollout';
import type { RolloutStatus } from '../update-server/rollouts';
import { appSource, SMALL_FLASH_BYTES, SMALL_LAYOUT } from './helpers/boot';
import { makeImage } from './helpers/fixtures';
import {
  enroll, makeRepoKeys, publishImage, quickDevices, startTestServer, tempDir, type RepoKeys, type TestServer,
} from './server-fixture';

const BOARD = 'qemu-virt-arm64';
const FLEET = 20;

let work: string;
let k: RepoKeys;
let server: TestServer;
let admin: AdminClient;
let adminId: Identity;
let devices: SimulatedDevice[];

beforeAll(async () => {
  work = tempDir('signet-ota-e2e-');
  k = await makeRepoKeys(work);
  server = await startTestServer(k, join(work, 'data'));
  adminId = await enroll(k, work, 'admin-1', true);
  admin = new AdminClient(server.url, adminId);
  const rootBytes = new Uint8Array(readFileSync(join(k.keys, 'root.json')));
  const factory = await makeImage({ version: '1.2.0', securityCounter: 3, app: appSource('svc', true), signers: [k.targets] });
  const ids = quickDevices(k, Array.from({ length: FLEET }, (_, i) => `tv-${String(i + 1).padStart(4, '0')}`));
  devices = ids.map((id) => SimulatedDevice.provision({
    dir: join(work, 'devices', id.id), id: id.id, board: BOARD, layout: SMALL_LAYOUT, rootBytes,
    serverUrl: server.url, tls: { ca: id.caPem, cert: id.certPem, key: id.keyPem },
    factoryImage: factory, flashBytes: SMALL_FLASH_BYTES, securityFloor: 3,
  }));
  // Power on, and a first check-in: the server learns the fleet; nothing is offered yet.
  for (const d of devices) {
    expect(await d.boot()).toMatchObject({ slot: 'a', version: '1.2.0' });
    expect((await d.checkForUpdate()).outcome).toBe('none');
  }
});

afterAll(async () => {
  for (const d of devices ?? []) d.shutdown();
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** One update cycle for a device, and if it staged something, the reboots that follow. */
async function cycle(d: SimulatedDevice): Promise<'none' | 'confirmed' | 'failed'> {
  const r = await d.checkForUpdate();
  if (r.outcome !== 'staged') return 'none';
  for (let i = 0; i < 5; i++) {
    const b = await d.boot();
    if (b.trial && b.confirmed) {
      await d.boot(); // the confirmed slot boots as a good slot
      return 'confirmed';
    }
    if (!b.trial) return 'failed'; // fell back
  }
  throw new Error(d.id + ' neither confirmed nor fell back');
}

function rollout(id: string): Promise<RolloutStatus> {
  return admin.json<RolloutStatus>('GET', '/api/v1/rollouts/' + id);
}

describe('a fleet of 20 simulated devices against the real update server', () => {
  let r130: RolloutStatus;

  it('publishes 1.3.0; a 50 % rollout updates exactly the devices in its buckets, through trial boot and confirm', async () => {
    const release = await makeImage({ version: '1.3.0', securityCounter: 4, app: appSource('svc', true), signers: [k.targets] });
    const pub = await publishImage(k, server.url, adminId, release, work);
    expect(pub).toMatchObject({ name: BOARD + '/test-svc-1.3.0.simg', version: '1.3.0', securityCounter: 4 });
    r130 = await admin.json<RolloutStatus>('POST', '/api/v1/rollouts', { board: BOARD, version: '1.3.0', percent: 50, haltFailureRate: 0.2 });
    const inBucket = devices.filter((d) => bucketOf(r130.id, d.id) < 50).map((d) => d.id);
    expect(inBucket.length).toBeGreaterThanOrEqual(4); // "about half" of 20
    expect(inBucket.length).toBeLessThanOrEqual(16);

    const updated: string[] = [];
    for (const d of devices) {
      const out = await cycle(d);
      expect(out).not.toBe('failed');
      if (out === 'confirmed') updated.push(d.id);
    }
    expect(updated).toEqual(inBucket);
    for (const d of devices) {
      const want = inBucket.includes(d.id) ? { slot: 'b', version: '1.3.0' } : { slot: 'a', version: '1.2.0' };
      expect(d.status()).toMatchObject(want);
    }
    const st = await rollout(r130.id);
    expect(st.state).toBe('active');
    expect(st.counts).toMatchObject({ confirmed: inBucket.length, failed: 0 });
  });

  it('promoted to 100 %, every device ends on 1.3.0, confirmed, and the server says so', async () => {
    await admin.json('POST', `/api/v1/rollouts/${r130.id}/promote`, { percent: 100 });
    for (const d of devices) {
      expect(await cycle(d)).not.toBe('failed');
      expect(d.status()).toMatchObject({ version: '1.3.0', securityCounter: 4, securityFloor: 4 });
      expect(d.state()).toMatchObject({ lastResult: 'ok' });
    }
    // Each checks in once more, reporting what it runs.
    for (const d of devices) expect((await d.checkForUpdate()).outcome).toBe('none');
    const st = await rollout(r130.id);
    expect(st.counts).toMatchObject({ confirmed: FLEET, failed: 0 });
    const fleet = await admin.json<{ devices: { id: string; version: string; lastError: string | null }[] }>('GET', '/api/v1/devices');
    const mine = fleet.devices.filter((x) => x.id.startsWith('tv-'));
    expect(mine).toHaveLength(FLEET);
    for (const x of mine) expect(x).toMatchObject({ version: '1.3.0', lastError: null });
  });

  it('a release that fails on its devices halts its rollout at the threshold; the rest never take it', async () => {
    const bad = await makeImage({ version: '1.3.1', securityCounter: 4, app: appSource('svc', false), signers: [k.targets] });
    await publishImage(k, server.url, adminId, bad, work);
    const r = await admin.json<RolloutStatus>('POST', '/api/v1/rollouts', { board: BOARD, version: '1.3.1', percent: 100, haltFailureRate: 0.2, minDevices: 3 });
    const outcomes: string[] = [];
    for (const d of devices) outcomes.push(await cycle(d));
    // Three finished devices, all failed: rate 1.0 > 0.2 with minDevices 3 → halted; nobody else was offered it.
    expect(outcomes.filter((o) => o === 'failed')).toHaveLength(3);
    expect(outcomes.slice(3)).toEqual(Array(FLEET - 3).fill('none'));
    const st = await rollout(r.id);
    expect(st.state).toBe('halted');
    expect(st.reason).toMatch(/failure rate/);
    expect(st.counts).toMatchObject({ failed: 3, confirmed: 0 });
    for (const d of devices) expect(d.status()).toMatchObject({ version: '1.3.0', securityFloor: 4 });
    const fleet = await admin.json<{ devices: { id: string; lastError: string | null }[] }>('GET', '/api/v1/devices');
    expect(fleet.devices.filter((x) => x.lastError === 'E_TRIAL_EXHAUSTED').map((x) => x.id).sort()).toEqual(devices.slice(0, 3).map((d) => d.id).sort());
  });
});
