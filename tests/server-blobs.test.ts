/**
 * What an admin may store: `PUT /api/v1/blobs/<sha256>` keeps only a signed Signet app image
 * for a board this server knows (E_BLOB_NOT_IMAGE otherwise, nothing left on disk), and blobs
 * that no targets metadata names are collected once past their grace period — after each
 * publish and on the server's timer — while an upload waiting for its publish is kept.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Identity } from '../sdk/keys/device';
import { makeImage, makeKeySet } from './helpers/fixtures';
import { call, enroll, makeRepoKeys, publishImage, releaseImage, startTestServer, tempDir, type RepoKeys, type TestServer } from './server-fixture';

let work: string;
let k: RepoKeys;
let srv: TestServer;
let admin: Identity;

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const blobPath = (h: string) => join(work, 'data', 'blobs', h.slice(0, 2), h);
const put = (bytes: Uint8Array, h = sha(bytes)) =>
  call(srv.url + '/api/v1/blobs/' + h, { ca: k.ca.certPem, id: admin, method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
/** Make a stored blob look `s` seconds old. */
const age = (h: string, s: number) => {
  const t = new Date(Date.now() - s * 1000);
  utimesSync(blobPath(h), t, t);
};

beforeAll(async () => {
  work = tempDir('signet-blobs-');
  k = await makeRepoKeys(work);
  srv = await startTestServer(k, join(work, 'data'));
  admin = await enroll(k, work, 'ops', true);
});

afterAll(async () => {
  await srv?.close();
  rmSync(work, { recursive: true, force: true });
});

function expectRefused(r: Awaited<ReturnType<typeof put>>, h: string, text: string | RegExp): void {
  expect(r.status, r.body.toString()).toBe(422);
  expect(r.json().error.code).toBe('E_BLOB_NOT_IMAGE');
  expect(r.json().error.message).toMatch(text);
  expect(existsSync(blobPath(h))).toBe(false);
  expect(readdirSync(join(work, 'data', 'blobs', '.incoming'))).toEqual([]);
}

describe('PUT /api/v1/blobs/<sha256> takes Signet app images only', () => {
  it('refuses bytes that are no image, with its hash right', async () => {
    const junk = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff);
    expectRefused(await put(junk), sha(junk), /not a Signet app image/);
    const short = new Uint8Array([0x53, 0x49]);
    expectRefused(await put(short), sha(short), /not a Signet app image/);
  });

  it('refuses an image whose header describes more bytes than were sent, or a truncated one', async () => {
    const img = await releaseImage(k, { version: '1.2.0', securityCounter: 3 });
    const cut = img.subarray(0, img.length - 10);
    expectRefused(await put(cut), sha(cut), /E_TRUNCATED|describes at least/);
    const head = img.subarray(0, 40);
    expectRefused(await put(head), sha(head), /describes at least/);
  });

  it('refuses an image for a board the server does not know', async () => {
    const img = await makeImage({ board: 'no-such-board', version: '1.2.0', securityCounter: 3, signers: [k.targets] });
    expectRefused(await put(img), sha(img), /E_BOARD_UNKNOWN/);
  });

  it('refuses an image the targets keys of the trusted root did not sign', async () => {
    const other = await makeKeySet();
    const img = await makeImage({ version: '1.2.0', securityCounter: 3, signers: other.targets.map((t) => t.signer) });
    expectRefused(await put(img), sha(img), /E_(SIGNATURE|THRESHOLD|UNKNOWN_KEY|NO_SIGNATURE)|signature/i);
  });

  it('stores a signed image for a known board', async () => {
    const img = await releaseImage(k, { version: '1.2.1', securityCounter: 3 });
    const r = await put(img);
    expect(r.status, r.body.toString()).toBe(201);
    expect(existsSync(blobPath(sha(img)))).toBe(true);
  });
});

describe('collecting blobs no metadata names', () => {
  it('keeps an unreferenced upload during its grace period and removes it after', async () => {
    const img = await releaseImage(k, { version: '1.4.0', securityCounter: 3 });
    const h = sha(img);
    expect((await put(img)).status).toBe(201);
    expect(await srv.app.collectBlobs()).toEqual([]);
    expect(existsSync(blobPath(h))).toBe(true);
    age(h, 2 * 3600);
    const removed = await srv.app.collectBlobs();
    expect(removed.map((b) => b.sha256)).toContain(h);
    expect(existsSync(blobPath(h))).toBe(false);
    expect((await srv.storage.auditLog()).filter((a) => a.action === 'blob.collect').map((a) => a.subject)).toContain(h);
    const metrics = (await call(srv.url + '/metrics', { ca: k.ca.certPem, id: admin })).body.toString();
    expect(metrics).toMatch(/^signet_blobs_collected_total [1-9]\d*$/m);
  });

  it('never removes a published blob, however old', async () => {
    const img = await releaseImage(k, { version: '1.3.0', securityCounter: 4 });
    await publishImage(k, srv.url, admin, img, work);
    age(sha(img), 30 * 86400);
    await srv.app.collectBlobs();
    expect(existsSync(blobPath(sha(img)))).toBe(true);
    expect((await call(srv.url + `/tuf/targets/qemu-virt-arm64/${sha(img)}.test-svc-1.3.0.simg`, { ca: k.ca.certPem, id: admin })).status).toBe(200);
  });

  it('an old unreferenced blob uploaded again before its publish is not raced', async () => {
    const img = await releaseImage(k, { version: '1.5.0', securityCounter: 4 });
    const h = sha(img);
    expect((await put(img)).status).toBe(201);
    age(h, 2 * 3600);
    // `signet publish` uploads (the bytes are held: 200) then publishes; a collection between the two keeps them.
    expect((await put(img)).status).toBe(200);
    expect(await srv.app.collectBlobs()).toEqual([]);
    await publishImage(k, srv.url, admin, img, work);
    expect(existsSync(blobPath(h))).toBe(true);
  });

  it('a publish collects what is past its grace, and only that', async () => {
    const stale = await releaseImage(k, { version: '1.6.0', securityCounter: 4 });
    const fresh = await releaseImage(k, { version: '1.6.1', securityCounter: 4 });
    expect((await put(stale)).status).toBe(201);
    expect((await put(fresh)).status).toBe(201);
    age(sha(stale), 2 * 3600);
    await publishImage(k, srv.url, admin, await releaseImage(k, { version: '1.7.0', securityCounter: 4 }), work);
    expect(existsSync(blobPath(sha(stale)))).toBe(false);
    expect(existsSync(blobPath(sha(fresh)))).toBe(true);
  });
});
