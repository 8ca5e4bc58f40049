// TUF's rollback protection across a device reboot: the device keeps its TUF metadata in memory
// (the 8 KiB config store cannot hold it), but the versions it last trusted persist in the
// config store (`ota.tuf`). A real config store on the flash test double, a real signed
// repository on loopback; a "reboot" is a new config store over the same flash, a new agent
// store and a new client (metadata memory empty).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SimFlash } from '../bootloader/src/block-sim';
import { ConfigStore, fileConfigAreas } from '../bootloader/src/configstore';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { generateEd25519 } from '../sdk/keys/keyfile';
import { ConfigAgentStore } from '../sdk/ota/agent-device';
import { TufClient } from '../sdk/ota/client';
import { NodeFetcher } from '../sdk/ota/fetcher-node';
import type { HostConfig } from '../sdk/runtime/config-types';
import { envelopeBytes, metaFor, TestRepo } from './helpers/tuf-repo';
import { RepoServer } from './helpers/tuf-repo-server';

const BOARD = 'qemu-virt-arm64';
const SECTOR = 512;

/** The device: flash with the config store's two areas; `boot()` is a (re)boot. */
class Device {
  private flash: SimFlash;
  config!: ConfigStore;
  constructor() {
    const areas = fileConfigAreas(SECTOR);
    this.flash = new SimFlash(2 * areas[0].count * SECTOR, SECTOR);
  }

  boot(): ConfigAgentStore {
    this.flash = this.flash.reboot();
    const store = new ConfigStore(this.flash, fileConfigAreas(SECTOR));
    this.config = store;
    const host: HostConfig = {
      get: (k) => store.get(k),
      set: (k, v) => store.set(k, v),
      delete: (k) => store.delete(k),
      keys: () => store.keys(),
      file: (n) => store.text('file', n),
      secret: (n) => store.text('secret', n),
    };
    return new ConfigAgentStore(host);
  }

  floors(): Record<string, unknown> {
    return JSON.parse(this.config.get('ota.tuf') ?? 'null');
  }
}

let repo: TestRepo;
let server: RepoServer;
let device: Device;

beforeEach(async () => {
  repo = await TestRepo.create();
  repo.addTarget(new Uint8Array([1, 2, 3]), { board: BOARD, name: 'svc', version: '1.0.0', securityCounter: 1 });
  await repo.publish();
  server = await RepoServer.start(repo);
  device = new Device();
});

afterEach(async () => {
  await server.close();
});

/** One refresh after a boot: a new client over a new store (no metadata in memory). */
function refreshAfterBoot(): Promise<string> {
  const c = new TufClient({
    fetcher: new NodeFetcher({ stallTimeoutMs: 10_000 }),
    store: device.boot(),
    crypto: nodeCrypto,
    rootBytes: repo.rootBytes,
    metadataUrl: server.url + '/tuf/metadata/',
    targetsUrl: server.url + '/tuf/targets/',
    now: () => Math.floor(Date.now() / 1000),
  });
  return new Promise((resolve) => c.refresh((err) => resolve(err ? err.code : 'OK')));
}

/** A timestamp signed by the repository's current timestamp keys, naming snapshot `meta`. */
async function timestamp(version: number, snapshotVersion: number): Promise<Uint8Array> {
  return envelopeBytes(repo.timestampSigned(version, metaFor(repo.file(`metadata/${snapshotVersion}.snapshot.json`), snapshotVersion)), repo.signers('timestamp'));
}

describe('the device keeps TUF rollback floors across reboots (config store ota.tuf)', () => {
  it('refuses an older, validly signed, unexpired timestamp after a reboot (5.4.3.1, E_META_ROLLBACK)', async () => {
    for (let i = 0; i < 3; i++) await repo.publishTimestamp();
    const v4 = repo.file('metadata/timestamp.json');
    await repo.publishTimestamp();
    expect(await refreshAfterBoot()).toBe('OK');
    expect(device.floors()).toMatchObject({ root: 1, timestamp: 5, snapshot: 1, targets: 1 });
    server.behave('/tuf/metadata/timestamp.json', { body: v4 });
    expect(await refreshAfterBoot()).toBe('E_META_ROLLBACK');
    // Refused, so the floor stays; the real timestamp is still accepted.
    expect(device.floors()).toMatchObject({ timestamp: 5 });
    server.normal();
    expect(await refreshAfterBoot()).toBe('OK');
  });

  it('refuses a newer timestamp naming an older snapshot after a reboot (5.4.3.2)', async () => {
    await repo.publish();
    expect(await refreshAfterBoot()).toBe('OK');
    expect(device.floors()).toMatchObject({ timestamp: 2, snapshot: 2, targets: 2 });
    server.behave('/tuf/metadata/timestamp.json', { body: await timestamp(9, 1) });
    expect(await refreshAfterBoot()).toBe('E_META_ROLLBACK');
  });

  it('refuses a newer snapshot naming older targets after a reboot (5.5.5)', async () => {
    await repo.publish();
    expect(await refreshAfterBoot()).toBe('OK');
    const snap = await envelopeBytes(repo.snapshotSigned(9, metaFor(repo.file('metadata/1.targets.json'), 1)), repo.signers('snapshot'));
    server.behave('/tuf/metadata/9.snapshot.json', { body: snap });
    server.behave('/tuf/metadata/timestamp.json', { body: await envelopeBytes(repo.timestampSigned(9, metaFor(snap, 9)), repo.signers('timestamp')) });
    expect(await refreshAfterBoot()).toBe('E_META_ROLLBACK');
  });

  it('writes the config store only when a version rises', async () => {
    expect(await refreshAfterBoot()).toBe('OK');
    const seq = device.config.seq();
    expect(await refreshAfterBoot()).toBe('OK');
    expect(await refreshAfterBoot()).toBe('OK');
    expect(device.config.seq()).toBe(seq);
    await repo.publishTimestamp();
    expect(await refreshAfterBoot()).toBe('OK');
    expect(device.config.seq()).toBe(seq + 1);
    expect(device.config.get('ota.tuf')!.length).toBeLessThan(128);
  });

  it('drops the timestamp, snapshot and targets floors when the timestamp keys rotate (5.3.11), and keeps the new ones across later boots', async () => {
    for (let i = 0; i < 4; i++) await repo.publishTimestamp();
    expect(await refreshAfterBoot()).toBe('OK');
    expect(device.floors()).toMatchObject({ timestamp: 5 });
    await repo.rotateRoot({ timestamp: [generateEd25519()] });
    // The new keys sign an older timestamp (version 2): recovery from a fast-forward.
    server.behave('/tuf/metadata/timestamp.json', { body: await timestamp(2, 1) });
    expect(await refreshAfterBoot()).toBe('OK');
    expect(device.floors()).toMatchObject({ root: 2, timestamp: 2, snapshot: 1, targets: 1 });
    // Each boot walks the chain from the built-in root again (rotated again): the floors taken
    // under the new keys stay.
    server.behave('/tuf/metadata/timestamp.json', { body: await timestamp(1, 1) });
    expect(await refreshAfterBoot()).toBe('E_META_ROLLBACK');
  });

  it('refuses a root chain that ends below the root it reached before a reboot', async () => {
    await repo.rotateRoot();
    expect(await refreshAfterBoot()).toBe('OK');
    expect(device.floors()).toMatchObject({ root: 2 });
    server.behave('/tuf/metadata/2.root.json', { status: 404 });
    expect(await refreshAfterBoot()).toBe('E_META_ROLLBACK');
  });
});
