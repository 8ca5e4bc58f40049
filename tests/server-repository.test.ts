/**
 * The repository's life over time: the server re-signs the timestamp (and snapshot) before
 * they expire, accepts the next root only through the root chain, and refuses to commit
 * metadata over a version someone else already wrote.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeCrypto } from '../sdk/image/crypto-node';
import type { Identity } from '../sdk/keys/device';
import { loadSigner } from '../sdk/keys/keyfile';
import { checkThreshold, parseEnvelope, parseUtc, verifyRootUpdate, verifyTrustedRoot, type RootSigned } from '../sdk/ota/metadata';
import { encodeMetadata } from '../sdk/ota/repository';
import { checkSnapshotShape, checkTimestampShape } from '../sdk/ota/roles';
import { signEnvelope } from '../sdk/ota/sign';
import { call, enroll, makeRepoKeys, publishImage, releaseImage, startTestServer, tempDir, type RepoKeys, type TestServer } from './server-fixture';

let work: string;
let k: RepoKeys;
let srv: TestServer;
let device: Identity;
let admin: Identity;
let clock = Math.floor(Date.now() / 1000);

const meta = async (file: string) => {
  const r = await call(srv.url + '/tuf/metadata/' + file, { ca: k.ca.certPem, id: device });
  expect(r.status, file).toBe(200);
  return parseEnvelope(new Uint8Array(r.body));
};

beforeAll(async () => {
  work = tempDir('signet-repo-');
  k = await makeRepoKeys(work);
  srv = await startTestServer(k, join(work, 'data'), { clock: () => clock });
  device = await enroll(k, work, 'tv-0001');
  admin = await enroll(k, work, 'ops', true);
  await publishImage(k, srv.url, admin, await releaseImage(k, { version: '1.3.0', securityCounter: 4 }), work);
});

afterAll(async () => {
  await srv?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('online metadata stays fresh', () => {
  it('re-signs the timestamp once half its lifetime has passed, and not before', async () => {
    const t1 = checkTimestampShape((await meta('timestamp.json')).signed);
    expect(t1.version).toBe(1);
    clock += 11 * 3600;
    expect(checkTimestampShape((await meta('timestamp.json')).signed).version).toBe(1);
    clock += 2 * 3600; // 13 h of a 24 h lifetime
    const env = await meta('timestamp.json');
    const t2 = checkTimestampShape(env.signed);
    expect(t2.version).toBe(2);
    expect(parseUtc(t2.expires)).toBe(clock + 86400);
    expect(t2.meta['snapshot.json']).toEqual(t1.meta['snapshot.json']); // same snapshot
    const root = verifyTrustedRoot(new Uint8Array(readFileSync(join(k.keys, 'root.json'))), nodeCrypto, null);
    checkThreshold(env, root, 'timestamp', nodeCrypto);
  });

  it('re-signs the snapshot too once half of its lifetime has passed', async () => {
    clock += 16 * 86400;
    const ts = checkTimestampShape((await meta('timestamp.json')).signed);
    expect(ts.version).toBe(3);
    expect(ts.meta['snapshot.json'].version).toBe(2);
    const snap = checkSnapshotShape((await meta('2.snapshot.json')).signed);
    expect(snap.meta['targets.json'].version).toBe(1);
    expect(parseUtc(snap.expires)).toBe(clock + 30 * 86400);
  });

  it('does the same on its periodic tick', async () => {
    clock += 13 * 3600;
    await srv.app.tick();
    expect((await srv.storage.latestMetadata('timestamp'))!.version).toBe(4);
  });
});

describe('root rotation', () => {
  let root1: RootSigned;

  it('accepts the next root, serves it as 2.root.json and re-signs the online metadata', async () => {
    root1 = verifyTrustedRoot(new Uint8Array(readFileSync(join(k.keys, 'root.json'))), nodeCrypto, null);
    const rootKey = await loadSigner(join(k.keys, 'root-1.key'));
    const next: RootSigned = { ...root1, version: 2 };
    const bytes = encodeMetadata(await signEnvelope(next, [rootKey]));
    const before = (await srv.storage.latestMetadata('timestamp'))!.version;
    const r = await call(srv.url + '/api/v1/root', { ca: k.ca.certPem, id: admin, method: 'POST', body: bytes });
    expect(r.status, r.body.toString()).toBe(200);
    expect(r.json()).toEqual({ version: 2 });
    const served = await call(srv.url + '/tuf/metadata/2.root.json', { ca: k.ca.certPem, id: device });
    expect(verifyRootUpdate(root1, new Uint8Array(served.body), nodeCrypto).version).toBe(2);
    expect((await srv.storage.latestMetadata('timestamp'))!.version).toBe(before + 1);
    expect((await call(srv.url + '/tuf/metadata/3.root.json', { ca: k.ca.certPem, id: device })).status).toBe(404);
  });

  it('refuses a root that skips a version or is not signed by the current root keys', async () => {
    const rootKey = await loadSigner(join(k.keys, 'root-1.key'));
    const skip = encodeMetadata(await signEnvelope({ ...root1, version: 4 }, [rootKey]));
    const r1 = await call(srv.url + '/api/v1/root', { ca: k.ca.certPem, id: admin, method: 'POST', body: skip });
    expect(r1.json().error.code).toBe('E_META_VERSION');
    const targetsKey = await loadSigner(join(k.keys, 'targets-1.key'));
    const forged = encodeMetadata(await signEnvelope({ ...root1, version: 3 }, [targetsKey]));
    const r2 = await call(srv.url + '/api/v1/root', { ca: k.ca.certPem, id: admin, method: 'POST', body: forged });
    expect(r2.json().error.code).toBe('E_META_THRESHOLD');
  });
});

describe('storage commits', () => {
  it('refuses metadata that follows a version which is no longer the latest', async () => {
    const latest = (await srv.storage.latestMetadata('timestamp'))!;
    await expect(srv.storage.commitMetadata(
      [{ role: 'timestamp', version: latest.version + 1, bytes: latest.bytes, createdAt: clock }], [], { timestamp: latest.version - 1 },
    )).rejects.toMatchObject({ code: 'E_CONFLICT' });
    expect((await srv.storage.latestMetadata('timestamp'))!.version).toBe(latest.version);
  });
});
