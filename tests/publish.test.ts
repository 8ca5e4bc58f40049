/**
 * Publishing: `signet publish` signs targets metadata offline and uploads it; the server
 * checks it against root, adds snapshot and timestamp with its online keys, and refuses
 * everything a careless or hostile publisher could send, committing nothing.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeCrypto } from '../sdk/image/crypto-node';
import type { Identity } from '../sdk/keys/device';
import { generateEd25519 } from '../sdk/keys/keyfile';
import { checkThreshold, formatUtc, parseEnvelope, verifyTrustedRoot, type Envelope } from '../sdk/ota/metadata';
import { addTarget, encodeMetadata, signTargets, targetForImage } from '../sdk/ota/repository';
import { checkSnapshotShape, checkTargetsShape, checkTimestampShape, type TargetsSigned } from '../sdk/ota/roles';
import { expectOneLineError } from './helpers/cli';
import {
  call, enroll, makeRepoKeys, publishImage, releaseImage, signetAsync, startTestServer, tempDir, type RepoKeys, type TestServer,
} from './server-fixture';

let work: string;
let k: RepoKeys;
let srv: TestServer;
let admin: Identity;
let device: Identity;
let adminDir: string;

const now = () => Math.floor(Date.now() / 1000);

async function get(path: string, id: Identity = device) {
  return call(srv.url + path, { ca: k.ca.certPem, id });
}

/** Walk the repository as a client would: timestamp → snapshot → targets, checking each link. */
async function readRepository() {
  const root = verifyTrustedRoot(new Uint8Array(readFileSync(join(k.keys, 'root.json'))), nodeCrypto, now());
  const tsRes = await get('/tuf/metadata/timestamp.json');
  const tsEnv = parseEnvelope(new Uint8Array(tsRes.body));
  checkThreshold(tsEnv, root, 'timestamp', nodeCrypto);
  const ts = checkTimestampShape(tsEnv.signed);
  const sm = ts.meta['snapshot.json'];
  const snapRes = await get(`/tuf/metadata/${sm.version}.snapshot.json`);
  expect(snapRes.body.length).toBe(sm.length);
  expect(createHash('sha256').update(snapRes.body).digest('hex')).toBe(sm.hashes!.sha256);
  const snapEnv = parseEnvelope(new Uint8Array(snapRes.body));
  checkThreshold(snapEnv, root, 'snapshot', nodeCrypto);
  const snap = checkSnapshotShape(snapEnv.signed);
  const tm = snap.meta['targets.json'];
  const tRes = await get(`/tuf/metadata/${tm.version}.targets.json`);
  expect(createHash('sha256').update(tRes.body).digest('hex')).toBe(tm.hashes!.sha256);
  const tEnv = parseEnvelope(new Uint8Array(tRes.body));
  checkThreshold(tEnv, root, 'targets', nodeCrypto);
  return { ts, snap, targets: checkTargetsShape(tEnv.signed) };
}

async function currentTargets(): Promise<TargetsSigned | null> {
  const r = await get('/api/v1/targets', admin);
  return r.json().targets ? (r.json().targets as Envelope<TargetsSigned>).signed : null;
}

async function uploadBlob(bytes: Uint8Array, sha = createHash('sha256').update(bytes).digest('hex')) {
  return call(srv.url + '/api/v1/blobs/' + sha, { ca: k.ca.certPem, id: admin, method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
}

async function postTargets(signed: TargetsSigned, signers = [k.targets]) {
  const env = await signTargets(signed, signers);
  return call(srv.url + '/api/v1/publish', { ca: k.ca.certPem, id: admin, method: 'POST', body: encodeMetadata(env) });
}

beforeAll(async () => {
  work = tempDir('signet-publish-');
  k = await makeRepoKeys(work);
  srv = await startTestServer(k, join(work, 'data'));
  device = await enroll(k, work, 'tv-0001');
  adminDir = join(work, 'admin');
  const e = await signetAsync(['device', 'enroll', '--admin', '--id', 'release-bot', '--keys', k.keys, '--out', adminDir]);
  expect(e.code, e.stderr).toBe(0);
  admin = (await import('../sdk/keys/device')).loadIdentity(adminDir);
});

afterAll(async () => {
  await srv?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('signet publish', () => {
  it('publishes a release: targets signed offline, snapshot and timestamp added by the server', async () => {
    expect((await get('/tuf/metadata/timestamp.json')).status).toBe(404); // nothing published yet
    const img = await releaseImage(k, { version: '1.3.0', securityCounter: 4, appBytes: 50_000 });
    const file = join(work, 'app-1.3.0.simg');
    writeFileSync(file, img);
    const r = await signetAsync(['publish', file, '--server', srv.url, '--keys', k.keys, '--admin', adminDir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    const sha = createHash('sha256').update(img).digest('hex');
    expect(out).toMatchObject({
      name: 'qemu-virt-arm64/test-svc-1.3.0.simg', sha256: sha, length: img.length, alreadyPublished: false,
      targetsVersion: 1, snapshotVersion: 1, timestampVersion: 1, signatures: 1,
      path: `qemu-virt-arm64/${sha}.test-svc-1.3.0.simg`,
    });
    const repo = await readRepository();
    expect(repo.targets.targets['qemu-virt-arm64/test-svc-1.3.0.simg']).toEqual({
      length: img.length, hashes: { sha256: sha }, custom: { board: 'qemu-virt-arm64', version: '1.3.0', securityCounter: 4, name: 'test-svc' },
    });
    const t = await get('/tuf/targets/' + out.path);
    expect(createHash('sha256').update(t.body).digest('hex')).toBe(sha);
  });

  it('adds the next release next to the first, bumping every version', async () => {
    const img = await releaseImage(k, { version: '1.4.0', securityCounter: 5 });
    const r = await publishImage(k, srv.url, admin, img, work);
    expect(r).toMatchObject({ targetsVersion: 2, snapshotVersion: 2, timestampVersion: 2 });
    const repo = await readRepository();
    expect(Object.keys(repo.targets.targets).sort()).toEqual(['qemu-virt-arm64/test-svc-1.3.0.simg', 'qemu-virt-arm64/test-svc-1.4.0.simg']);
    expect(repo.ts.version).toBe(2);
    // The old consistent snapshot stays fetchable for clients mid-update.
    expect((await get('/tuf/metadata/1.targets.json')).status).toBe(200);
  });

  it('is idempotent: publishing the same image again signs nothing', async () => {
    const img = await releaseImage(k, { version: '1.4.0', securityCounter: 5 });
    const r = await publishImage(k, srv.url, admin, img, work);
    expect(r).toMatchObject({ alreadyPublished: true, targetsVersion: 2 });
  });

  it('refuses an image the vendor\'s root does not trust, before uploading anything', async () => {
    const foreign = generateEd25519();
    const { makeImage } = await import('./helpers/fixtures');
    const img = await makeImage({ version: '1.5.0', securityCounter: 6, signers: [foreign.signer] });
    const file = join(work, 'foreign.simg');
    writeFileSync(file, img);
    const before = readdirSync(join(work, 'data', 'blobs')).length;
    const r = await signetAsync(['publish', file, '--server', srv.url, '--keys', k.keys, '--admin', adminDir]);
    expectOneLineError(r, 'E_UNKNOWN_KEY');
    expect(readdirSync(join(work, 'data', 'blobs')).length).toBe(before);
    expect((await readRepository()).targets.version).toBe(2);
  });

  it('says so in one line when the server is unreachable or the keys lack a targets key', async () => {
    const file = join(work, 'app-1.3.0.simg');
    expectOneLineError(await signetAsync(['publish', file, '--server', 'https://127.0.0.1:1', '--keys', k.keys, '--admin', adminDir]), 'E_SERVER_UNREACHABLE');
    const fresh = join(work, 'app-1.5.1.simg');
    writeFileSync(fresh, await releaseImage(k, { version: '1.5.1', securityCounter: 6 }));
    expectOneLineError(await signetAsync(['publish', fresh, '--server', srv.url, '--keys', k.serverKeys, '--admin', adminDir]), 'E_REPO_NO_TARGETS_KEY');
    expectOneLineError(await signetAsync(['publish', file, '--server', srv.url, '--keys', k.keys, '--admin', join(work, 'nobody')]), 'E_IDENTITY_FILE');
  });
});

describe('the server refuses bad publishes and commits nothing', () => {
  it('refuses targets metadata not signed by the targets keys', async () => {
    const cur = await currentTargets();
    const img = await releaseImage(k, { version: '1.6.0', securityCounter: 7 });
    expect((await uploadBlob(img)).status).toBe(201);
    const next = addTarget(cur, targetForImage(img, nodeCrypto), formatUtc(now() + 86400));
    const r = await postTargets(next, [generateEd25519().signer]);
    expect(r.status).toBe(422);
    expect(r.json().error.code).toBe('E_META_THRESHOLD');
  });

  it('refuses a replayed or skipped targets version', async () => {
    const cur = (await currentTargets())!;
    const img = await releaseImage(k, { version: '1.6.0', securityCounter: 7 });
    const next = addTarget(cur, targetForImage(img, nodeCrypto), formatUtc(now() + 86400));
    expect((await postTargets({ ...next, version: cur.version })).json().error.code).toBe('E_META_VERSION');
    expect((await postTargets({ ...next, version: cur.version + 2 })).json().error.code).toBe('E_META_VERSION');
  });

  it('refuses expired targets metadata', async () => {
    const cur = (await currentTargets())!;
    const img = await releaseImage(k, { version: '1.6.0', securityCounter: 7 });
    const next = addTarget(cur, targetForImage(img, nodeCrypto), formatUtc(now() - 60));
    expect((await postTargets(next)).json().error.code).toBe('E_META_EXPIRED');
  });

  it('refuses metadata naming a blob that was never uploaded', async () => {
    const cur = (await currentTargets())!;
    const img = await releaseImage(k, { version: '1.7.0', securityCounter: 8 });
    const next = addTarget(cur, targetForImage(img, nodeCrypto), formatUtc(now() + 86400));
    expect((await postTargets(next)).json().error.code).toBe('E_REPO_TARGET_MISSING');
  });

  it('refuses an entry whose image says something else', async () => {
    const cur = (await currentTargets())!;
    const img = await releaseImage(k, { version: '1.6.0', securityCounter: 7 });
    await uploadBlob(img);
    const t = targetForImage(img, nodeCrypto);
    const lie = { name: 'qemu-virt-arm64/test-svc-1.8.0.simg', file: { ...t.file, custom: { ...t.file.custom, version: '1.8.0' } } };
    expect((await postTargets(addTarget(cur, lie, formatUtc(now() + 86400)))).json().error.code).toBe('E_REPO_IMAGE_MISMATCH');
  });

  it('refuses changing the bytes of a published name', async () => {
    const cur = (await currentTargets())!;
    const other = await releaseImage(k, { version: '1.3.0', securityCounter: 4, appBytes: 10 });
    await uploadBlob(other);
    const t = targetForImage(other, nodeCrypto);
    const next: TargetsSigned = { ...cur, version: cur.version + 1, targets: { ...cur.targets, [t.name]: t.file } };
    expect((await postTargets(next)).json().error.code).toBe('E_REPO_TARGET_CHANGED');
  });

  it('refuses an upload whose bytes do not hash to its name, leaving nothing behind', async () => {
    const img = await releaseImage(k, { version: '1.9.0', securityCounter: 9 });
    const r = await uploadBlob(img, 'ab'.repeat(32));
    expect(r.status).toBe(422);
    expect(r.json().error.code).toBe('E_UPLOAD_MISMATCH');
    // The claimed name is not stored (its fan-out folder `ab` may exist for another blob).
    expect(existsSync(join(work, 'data', 'blobs', 'ab', 'ab'.repeat(32)))).toBe(false);
    expect(readdirSync(join(work, 'data', 'blobs', '.incoming'))).toEqual([]);
  });

  it('refuses publishing with a device certificate', async () => {
    const r = await call(srv.url + '/api/v1/publish', { ca: k.ca.certPem, id: device, method: 'POST', body: new Uint8Array([123, 125]) });
    expect(r.json().error.code).toBe('E_AUTH_ROLE');
  });

  it('still serves the last good repository after all of that', async () => {
    const repo = await readRepository();
    expect(repo.targets.version).toBe(2);
    expect(repo.ts.version).toBe(2);
  });
});

describe('rollout and device commands', () => {
  it('drives a rollout from the CLI', async () => {
    const base = ['--server', srv.url, '--admin', adminDir];
    const c = await signetAsync(['rollout', 'create', '--board', 'qemu-virt-arm64', '--version', '1.4.0', '--percent', '10', '--halt-failure-rate', '0.05', ...base, '--json']);
    expect(c.code, c.stderr).toBe(0);
    const id = JSON.parse(c.stdout).id;
    expect(JSON.parse(c.stdout)).toMatchObject({ state: 'active', percent: 10, haltFailureRate: 0.05, channel: 'stable' });
    const p = await signetAsync(['rollout', 'pause', id, ...base]);
    expect(p.stdout).toMatch(new RegExp(`^${id}  qemu-virt-arm64/stable  1.4.0  paused  10%`));
    expect((await signetAsync(['rollout', 'resume', id, ...base])).code).toBe(0);
    const pr = await signetAsync(['rollout', 'promote', id, '--percent', '50', ...base, '--json']);
    expect(JSON.parse(pr.stdout).percent).toBe(50);
    const st = await signetAsync(['rollout', 'status', ...base]);
    expect(st.stdout).toContain(`${id}  qemu-virt-arm64/stable  1.4.0  active  50%`);
    expectOneLineError(await signetAsync(['rollout', 'pause', 'r99', ...base]), 'E_NOT_FOUND');
    expectOneLineError(await signetAsync(['rollout', 'create', '--board', 'qemu-virt-arm64', '--version', '1.4.0', '--percent', '10', '--halt-failure-rate', '5', ...base]), 'E_USAGE');
  });

  it('revokes a device from the CLI', async () => {
    const victim = await enroll(k, work, 'tv-lost');
    const r = await signetAsync(['device', 'revoke', '--id', 'tv-lost', '--reason', 'lost in transit', '--server', srv.url, '--admin', adminDir]);
    expect(r.code, r.stderr).toBe(0);
    const refused = await call(srv.url + '/tuf/metadata/1.root.json', { ca: k.ca.certPem, id: victim });
    expect(refused.json().error.code).toBe('E_AUTH_REVOKED');
    const list = await signetAsync(['device', 'list', '--server', srv.url, '--admin', adminDir, '--json']);
    expect(JSON.parse(list.stdout).revoked).toEqual([expect.objectContaining({ id: 'tv-lost', reason: 'lost in transit' })]);
  });

  it('refuses to start a server on the vendor\'s full key set', async () => {
    expectOneLineError(await signetAsync(['server', '--data', join(work, 'd9'), '--keys', k.keys, '--port', '0']), 'E_SERVER_OFFLINE_KEYS');
  });
});
