/**
 * One OTA scene for agent and attack tests: a signed test repository with a 1.3.0 release, the
 * loopback server offering it, and a simulated device (real boot stage, file-backed flash)
 * running 1.2.0 from the factory, booted once.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SimulatedDevice, type SimulatedDeviceOptions } from '../../sdk/ota/device';
import type { TargetCustom } from '../../sdk/ota/roles';
import { appSource, SMALL_FLASH_BYTES, SMALL_LAYOUT, tempDir } from './boot';
import { makeImage, type ImageSpec } from './fixtures';
import { TestRepo, type RepoOptions } from './tuf-repo';
import { RepoServer, type TlsServerOptions } from './tuf-repo-server';

export const BOARD = 'qemu-virt-arm64';

export interface OtaWorld {
  dir: string;
  repo: TestRepo;
  server: RepoServer;
  device: SimulatedDevice;
  factory: Uint8Array;
  /** The 1.3.0 release (counter 4), published and offered. */
  release: Uint8Array;
  releaseName: string;
  /** A release image signed by the repository's targets keys. */
  image(spec: Partial<ImageSpec> & { confirm?: boolean }): Promise<Uint8Array>;
  /** Add an image as a target and publish new metadata; returns its name. */
  publishImage(bytes: Uint8Array, custom: Partial<TargetCustom>): Promise<string>;
  /** Another device on the same server (fresh flash, same factory image). */
  addDevice(name: string, extra?: Partial<SimulatedDeviceOptions>): Promise<SimulatedDevice>;
  close(): Promise<void>;
}

export interface WorldOptions {
  repo?: RepoOptions;
  tls?: TlsServerOptions;
  device?: Partial<SimulatedDeviceOptions>;
}

export async function otaWorld(o: WorldOptions = {}): Promise<OtaWorld> {
  const dir = tempDir('signet-ota-');
  const repo = await TestRepo.create(o.repo);
  const image = async (spec: Partial<ImageSpec> & { confirm?: boolean }) =>
    makeImage({ app: appSource('svc', spec.confirm ?? true), ...spec, signers: spec.signers ?? repo.signers('targets') });
  const factory = await image({ version: '1.2.0', securityCounter: 3 });
  const release = await image({ version: '1.3.0', securityCounter: 4 });
  const publishImage = async (bytes: Uint8Array, c: Partial<TargetCustom>) => {
    const name = repo.addTarget(bytes, { board: BOARD, name: 'svc', version: '1.3.0', securityCounter: 4, ...c });
    await repo.publish();
    return name;
  };
  const releaseName = await publishImage(release, {});
  const server = await RepoServer.start(repo, o.tls);
  server.offer = repo.offerFor(releaseName);
  const devices: SimulatedDevice[] = [];
  const addDevice = async (name: string, extra: Partial<SimulatedDeviceOptions> = {}) => {
    const d = SimulatedDevice.provision({
      dir: join(dir, name),
      id: name,
      board: BOARD,
      layout: SMALL_LAYOUT,
      rootBytes: repo.rootBytes,
      serverUrl: server.url,
      factoryImage: factory,
      flashBytes: SMALL_FLASH_BYTES,
      securityFloor: 3,
      ...o.device,
      ...extra,
    });
    devices.push(d);
    await d.boot();
    return d;
  };
  const device = await addDevice('device');
  return {
    dir, repo, server, device, factory, release, releaseName, image, publishImage, addDevice,
    async close() {
      for (const d of devices) d.shutdown();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
