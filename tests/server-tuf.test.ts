/**
 * A TUF client we did not write — tuf-js@3 — against our repository, served by the real
 * server over HTTPS with mutual TLS. tuf-js's own fetcher (make-fetch-happen) cannot present
 * a client certificate, so the test gives it a fetcher (its documented `BaseFetcher`
 * extension point) that makes the same GETs with node:https and a device certificate; every
 * trust decision is tuf-js's.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Updater } from 'tuf-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MtlsFetcher } from './helpers/tuf-js-mtls';
import type { Identity } from '../sdk/keys/device';
import type { MetadataRole } from '../sdk/ota/repository';
import type { SqliteStorage } from '../update-server/storage-sqlite';
import type { Storage } from '../update-server/storage';
import { enroll, makeRepoKeys, publishImage, releaseImage, startTestServer, tempDir, type RepoKeys, type TestServer } from './server-fixture';

let work: string;
let k: RepoKeys;
let srv: TestServer;
let device: Identity;
let admin: Identity;
let v130: Uint8Array;
/** When set, the server's storage answers the latest timestamp with this older version. */
let rollbackTimestampTo: number | null = null;

function withRollback(s: SqliteStorage): Storage {
  return new Proxy(s, {
    get(target, prop) {
      if (prop === 'latestMetadata') {
        return (role: MetadataRole) => (role === 'timestamp' && rollbackTimestampTo !== null ? target.metadata('timestamp', rollbackTimestampTo) : target.latestMetadata(role));
      }
      const v = (target as unknown as Record<string | symbol, unknown>)[prop];
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

function updater(metadataDir: string, targetDir: string): Updater {
  return new Updater({
    metadataDir,
    targetDir,
    metadataBaseUrl: srv.url + '/tuf/metadata',
    targetBaseUrl: srv.url + '/tuf/targets',
    fetcher: new MtlsFetcher(device),
  });
}

beforeAll(async () => {
  work = tempDir('signet-tufjs-');
  k = await makeRepoKeys(work);
  srv = await startTestServer(k, join(work, 'data'), { wrapStorage: withRollback });
  device = await enroll(k, work, 'tv-tufjs');
  admin = await enroll(k, work, 'ops', true);
  v130 = await releaseImage(k, { version: '1.3.0', securityCounter: 4, appBytes: 200_000 });
  await publishImage(k, srv.url, admin, v130, work);
});

afterAll(async () => {
  await srv?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('tuf-js@3 against the Signet update server', () => {
  let metadataDir: string;
  let targetDir: string;

  it('refreshes the repository and downloads a target, checking length and hash itself', async () => {
    metadataDir = join(work, 'tuf-meta');
    targetDir = join(work, 'tuf-targets');
    mkdirSync(metadataDir);
    mkdirSync(targetDir);
    // The trust anchor a client ships with: the vendor's root.json.
    writeFileSync(join(metadataDir, 'root.json'), readFileSync(join(k.keys, 'root.json')));
    const u = updater(metadataDir, targetDir);
    await u.refresh();
    const info = await u.getTargetInfo('qemu-virt-arm64/test-svc-1.3.0.simg');
    expect(info).toBeDefined();
    expect(info!.length).toBe(v130.length);
    expect(info!.custom).toEqual({ board: 'qemu-virt-arm64', version: '1.3.0', securityCounter: 4, name: 'test-svc' });
    const path = await u.downloadTarget(info!, join(targetDir, 'test-svc-1.3.0.simg'));
    expect(Buffer.compare(readFileSync(path), Buffer.from(v130))).toBe(0);
    expect(await u.getTargetInfo('qemu-virt-arm64/no-such-1.0.0.simg')).toBeUndefined();
  });

  it('follows the next publish', async () => {
    await publishImage(k, srv.url, admin, await releaseImage(k, { version: '1.4.0', securityCounter: 5 }), work);
    const u = updater(metadataDir, targetDir);
    await u.refresh();
    expect(await u.getTargetInfo('qemu-virt-arm64/test-svc-1.4.0.simg')).toBeDefined();
    expect(JSON.parse(readFileSync(join(metadataDir, 'timestamp.json'), 'utf8')).signed.version).toBe(2);
  });

  it('refuses when the server serves a rolled-back timestamp', async () => {
    rollbackTimestampTo = 1;
    try {
      const u = updater(metadataDir, targetDir);
      const err = await u.refresh().then(() => null, (e: Error) => e);
      expect(err).not.toBeNull();
      expect(err!.constructor.name).toBe('BadVersionError'); // tuf-js's 5.4.3.1 rollback check
      expect(err!.message).toBe('New timestamp version 1 is less than current version 2');
      // Nothing the client trusted was replaced.
      expect(JSON.parse(readFileSync(join(metadataDir, 'timestamp.json'), 'utf8')).signed.version).toBe(2);
    } finally {
      rollbackTimestampTo = null;
    }
    // And the honest server is accepted again.
    await updater(metadataDir, targetDir).refresh();
  });
});
