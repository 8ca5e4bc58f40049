/**
 * The update server's API over real HTTPS with mutual TLS on loopback: who is let in, who is
 * refused and with which code, what is recorded, and how targets are served (Range).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueCertificate } from '../sdk/keys/device-x509';
import { createVendorCa } from '../sdk/keys/x509';
import { startServer } from '../update-server/start';
import { parseRange } from '../update-server/app';
import {
  call, enroll, makeRepoKeys, publishImage, releaseImage, startTestServer, tempDir, type RepoKeys, type TestServer,
} from './server-fixture';
import type { Identity } from '../sdk/keys/device';

let work: string;
let k: RepoKeys;
let srv: TestServer;
let device: Identity;
let admin: Identity;
let image: Uint8Array;
let targetPath: string;

const CHECKIN = { board: 'qemu-virt-arm64', version: '1.2.0', securityCounter: 3, slot: 'a' };

beforeAll(async () => {
  work = tempDir('signet-server-');
  k = await makeRepoKeys(work);
  srv = await startTestServer(k, join(work, 'data'));
  device = await enroll(k, work, 'tv-0001');
  admin = await enroll(k, work, 'ops', true);
  image = await releaseImage(k, { version: '1.3.0', securityCounter: 4, appBytes: 100_000 });
  const r = await publishImage(k, srv.url, admin, image, work);
  targetPath = r.path;
});

afterAll(async () => {
  await srv?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('mutual TLS', () => {
  it('refuses a client without a certificate on every device and repository endpoint', async () => {
    for (const [path, body] of [['/api/v1/checkin', CHECKIN], ['/tuf/metadata/1.root.json', undefined], ['/tuf/targets/' + targetPath, undefined]] as const) {
      const r = await call(srv.url + path, { ca: k.ca.certPem, body });
      expect(r.status, path).toBe(401);
      expect(r.json().error.code).toBe('E_AUTH_NO_CERT');
    }
  });

  it('refuses a certificate from another CA, even with the same CN and role', async () => {
    const other = createVendorCa('Mallory CA', 30);
    const c = issueCertificate({ caCertPem: other.certPem, caKeyPem: other.keyPem, commonName: 'tv-0001', role: 'device', days: 30 });
    const r = await call(srv.url + '/api/v1/checkin', { ca: k.ca.certPem, id: { certPem: c.certPem, keyPem: c.keyPem! }, body: CHECKIN });
    expect(r.status).toBe(401);
    expect(r.json().error.code).toBe('E_AUTH_BAD_CERT');
  });

  it('refuses an expired certificate from the right CA', async () => {
    const c = issueCertificate({ caCertPem: k.ca.certPem, caKeyPem: k.ca.keyPem, commonName: 'tv-old', role: 'device', days: 1,
      now: new Date(Date.now() - 10 * 86400_000) });
    const r = await call(srv.url + '/api/v1/checkin', { ca: k.ca.certPem, id: { certPem: c.certPem, keyPem: c.keyPem! }, body: CHECKIN });
    expect(r.status).toBe(401);
    expect(r.json().error.code).toBe('E_AUTH_BAD_CERT');
    expect(r.json().error.message).toMatch(/expired/i);
  });

  it('records the device id from the certificate, never from the body', async () => {
    const r = await call(srv.url + '/api/v1/checkin', { ca: k.ca.certPem, id: device, body: { ...CHECKIN, id: 'someone-else', deviceId: 'x' } });
    expect(r.status, r.body.toString()).toBe(200);
    expect(r.json()).toEqual({ offer: null, reason: 'no-rollout' });
    const list = await call(srv.url + '/api/v1/devices', { ca: k.ca.certPem, id: admin });
    const ids = list.json().devices.map((d: { id: string }) => d.id);
    expect(ids).toContain('tv-0001');
    expect(ids).not.toContain('someone-else');
    const d = list.json().devices.find((x: { id: string }) => x.id === 'tv-0001');
    expect(d).toMatchObject({ board: 'qemu-virt-arm64', version: '1.2.0', securityCounter: 3, slot: 'a', channel: 'stable' });
    expect(d.certSerial.replace(/^0+/, '')).toBe(device.serial.toLowerCase().replace(/^0+/, ''));
  });

  it('keeps devices and admins apart', async () => {
    const r1 = await call(srv.url + '/api/v1/targets', { ca: k.ca.certPem, id: device });
    expect(r1.status).toBe(403);
    expect(r1.json().error.code).toBe('E_AUTH_ROLE');
    const r2 = await call(srv.url + '/api/v1/checkin', { ca: k.ca.certPem, id: admin, body: CHECKIN });
    expect(r2.json().error.code).toBe('E_AUTH_ROLE');
  });

  it('refuses a revoked device on every endpoint, with the reason', async () => {
    const victim = await enroll(k, work, 'tv-stolen');
    expect((await call(srv.url + '/api/v1/checkin', { ca: k.ca.certPem, id: victim, body: CHECKIN })).status).toBe(200);
    const rv = await call(srv.url + '/api/v1/devices/tv-stolen/revoke', { ca: k.ca.certPem, id: admin, body: { reason: 'reported stolen' } });
    expect(rv.status, rv.body.toString()).toBe(200);
    for (const path of ['/api/v1/checkin', '/tuf/metadata/timestamp.json']) {
      const r = await call(srv.url + path, { ca: k.ca.certPem, id: victim, body: path.includes('checkin') ? CHECKIN : undefined });
      expect(r.status, path).toBe(403);
      expect(r.json().error).toMatchObject({ code: 'E_AUTH_REVOKED' });
      expect(r.json().error.message).toContain('reported stolen');
    }
    // The check-in reads the revocation with the device (one read), still before the body:
    // a revoked device is refused as revoked whatever it sends.
    const bad = await call(srv.url + '/api/v1/checkin', { ca: k.ca.certPem, id: victim, body: { board: 'Bad Board' } });
    expect([bad.status, bad.json().error.code]).toEqual([403, 'E_AUTH_REVOKED']);
    // Other devices are unaffected.
    expect((await call(srv.url + '/api/v1/checkin', { ca: k.ca.certPem, id: device, body: CHECKIN })).status).toBe(200);
  });

  it('validates check-in bodies with typed errors', async () => {
    for (const body of [{ ...CHECKIN, board: 'Bad Board' }, { ...CHECKIN, version: 'one' }, { ...CHECKIN, securityCounter: -1 }, { board: 'x' }]) {
      const r = await call(srv.url + '/api/v1/checkin', { ca: k.ca.certPem, id: device, body });
      expect(r.status).toBe(400);
      expect(r.json().error.code).toBe('E_BAD_REQUEST');
    }
    const big = await call(srv.url + '/api/v1/checkin', { ca: k.ca.certPem, id: device, body: { ...CHECKIN, pad: 'x'.repeat(100_000) } });
    expect(big.status).toBe(413);
  });
});

describe('repository over HTTPS', () => {
  it('serves consistent-snapshot metadata and 404 past the end of the root chain', async () => {
    const ts = await call(srv.url + '/tuf/metadata/timestamp.json', { ca: k.ca.certPem, id: device });
    expect(ts.status).toBe(200);
    const snapMeta = ts.json().signed.meta['snapshot.json'];
    const snap = await call(srv.url + `/tuf/metadata/${snapMeta.version}.snapshot.json`, { ca: k.ca.certPem, id: device });
    expect(snap.body.length).toBe(snapMeta.length);
    expect(createHash('sha256').update(snap.body).digest('hex')).toBe(snapMeta.hashes.sha256);
    const tMeta = snap.json().signed.meta['targets.json'];
    const targets = await call(srv.url + `/tuf/metadata/${tMeta.version}.targets.json`, { ca: k.ca.certPem, id: device });
    expect(createHash('sha256').update(targets.body).digest('hex')).toBe(tMeta.hashes.sha256);
    expect(Object.keys(targets.json().signed.targets)).toEqual(['qemu-virt-arm64/test-svc-1.3.0.simg']);
    expect((await call(srv.url + '/tuf/metadata/2.root.json', { ca: k.ca.certPem, id: device })).status).toBe(404);
    expect((await call(srv.url + '/tuf/metadata/../signet.db', { ca: k.ca.certPem, id: device })).status).toBe(404);
  });

  it('serves a target whole and by Range, and refuses unsatisfiable ranges', async () => {
    const url = srv.url + '/tuf/targets/' + targetPath;
    const whole = await call(url, { ca: k.ca.certPem, id: device });
    expect(whole.status).toBe(200);
    expect(Buffer.compare(whole.body, Buffer.from(image))).toBe(0);
    expect(whole.headers['accept-ranges']).toBe('bytes');

    const tail = await call(url, { ca: k.ca.certPem, id: device, headers: { range: 'bytes=4000-' } });
    expect(tail.status).toBe(206);
    expect(tail.headers['content-range']).toBe(`bytes 4000-${image.length - 1}/${image.length}`);
    expect(Buffer.compare(tail.body, Buffer.from(image.subarray(4000)))).toBe(0);

    const mid = await call(url, { ca: k.ca.certPem, id: device, headers: { range: 'bytes=10-19' } });
    expect(Buffer.compare(mid.body, Buffer.from(image.subarray(10, 20)))).toBe(0);
    const suffix = await call(url, { ca: k.ca.certPem, id: device, headers: { range: 'bytes=-5' } });
    expect(Buffer.compare(suffix.body, Buffer.from(image.subarray(image.length - 5)))).toBe(0);

    const past = await call(url, { ca: k.ca.certPem, id: device, headers: { range: `bytes=${image.length}-` } });
    expect(past.status).toBe(416);
    expect(past.headers['content-range']).toBe(`bytes */${image.length}`);

    // A stale partial copy (If-Range names other bytes) gets the whole file.
    const stale = await call(url, { ca: k.ca.certPem, id: device, headers: { range: 'bytes=4000-', 'if-range': '"0000"' } });
    expect(stale.status).toBe(200);
    expect(stale.body.length).toBe(image.length);

    // Only the consistent name with the right hash exists.
    const wrong = targetPath.replace(/\/[0-9a-f]{4}/, '/0000');
    expect((await call(srv.url + '/tuf/targets/' + wrong, { ca: k.ca.certPem, id: device })).status).toBe(404);
  });

  it('parses Range headers as RFC 9110 says', () => {
    expect(parseRange('bytes=0-0', 10)).toEqual({ start: 0, end: 0 });
    expect(parseRange('bytes=5-100', 10)).toEqual({ start: 5, end: 9 });
    expect(parseRange('bytes=-100', 10)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=10-', 10)).toBe('unsatisfiable');
    expect(parseRange('bytes=5-4', 10)).toBeNull();
    expect(parseRange('bytes=0-1,3-4', 10)).toBeNull();
    expect(parseRange('items=0-1', 10)).toBeNull();
  });

  it('exposes Prometheus metrics and the dashboard to an admin certificate (loopback needs one too unless --open-local)', async () => {
    expect((await call(srv.url + '/metrics', { ca: k.ca.certPem })).status).toBe(401);
    const m = await call(srv.url + '/metrics', { ca: k.ca.certPem, id: admin });
    expect(m.status).toBe(200);
    const text = m.body.toString();
    expect(text).toMatch(/^signet_checkins_total [1-9]\d*$/m);
    expect(text).toMatch(/^signet_downloads_total\{kind="target"\} [1-9]\d*$/m);
    expect(text).toMatch(/^signet_download_bytes_total\{kind="target"\} [1-9]\d*$/m);
    expect(text).toMatch(/^signet_refusals_total\{code="E_AUTH_NO_CERT"\} [1-9]\d*$/m);
    expect(text).toMatch(/^signet_devices\{board="qemu-virt-arm64",version="1.2.0"\} \d+$/m);
    const d = await call(srv.url + '/dashboard', { ca: k.ca.certPem, id: admin });
    expect(d.status).toBe(200);
    expect(d.headers['content-security-policy']).toContain("default-src 'none'");
  });
});

describe('signet server start-up', () => {
  it('refuses to start with root or targets private keys in its keys folder', async () => {
    await expect(startServer({ dataDir: join(work, 'd2'), keysDir: k.keys, port: 0 })).rejects.toMatchObject({ code: 'E_SERVER_OFFLINE_KEYS' });
  });

  it('refuses online keys that root does not name for snapshot and timestamp', async () => {
    const other = join(work, 'other');
    mkdirSync(other);
    const k2 = await makeRepoKeys(other);
    const mixed = join(work, 'mixed-keys');
    mkdirSync(mixed);
    for (const f of ['root.json', 'vendor-ca.crt', 'server.crt', 'server.key']) writeFileSync(join(mixed, f), readFileSync(join(k.serverKeys, f)));
    for (const f of ['snapshot.key', 'timestamp.key']) writeFileSync(join(mixed, f), readFileSync(join(k2.serverKeys, f)));
    await expect(startServer({ dataDir: join(work, 'd3'), keysDir: mixed, port: 0 })).rejects.toMatchObject({ code: 'E_REPO_ONLINE_KEY' });
  });
});
