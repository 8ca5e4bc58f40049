/**
 * Cross-site request forgery against the admin API, as it would happen: an admin's Chromium
 * (Debian's, headless, driven by playwright-core) holds an admin client certificate for the
 * update server, and visits a page on another origin (a second HTTP server on loopback) that
 * auto-submits a form POST, or sends a no-cors fetch, to an admin endpoint. Nothing changes.
 * The same browser on the server's own origin still acts; plain requests show each rule
 * (Content-Type → 415, empty JSON body → 400, Sec-Fetch-Site / Origin → 403) on its own.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import type { Identity } from '../sdk/keys/device';
import { call, enroll, makeRepoKeys, publishImage, releaseImage, startTestServer, tempDir, type RepoKeys, type TestServer } from './server-fixture';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

let work: string;
let k: RepoKeys;
let srv: TestServer;
let admin: Identity;
let device: Identity;
let rolloutId: string;
let evil: Server;
let evilUrl: string;
let browser: Browser;
let context: BrowserContext;

const adminGet = async (path: string) => (await call(srv.url + path, { ca: k.ca.certPem, id: admin })).json();
const rollout = () => adminGet('/api/v1/rollouts/' + rolloutId);
const audit = async () => srv.storage.auditLog();

/** The attacker's pages: each auto-submits to the update server as soon as it loads. */
function attackPages(target: string): Record<string, string> {
  const page = (body: string) => `<!doctype html><html><body>${body}</body></html>`;
  return {
    '/form-pause': page(`<form id="f" method="POST" action="${target}/api/v1/rollouts/${rolloutId}/pause"><input name="x" value="1"></form>
<script>document.getElementById('f').submit()</script>`),
    // enctype text/plain can make a body that parses as JSON: {"percent":100,"x":"="}
    '/form-json-promote': page(`<form id="f" method="POST" enctype="text/plain" action="${target}/api/v1/rollouts/${rolloutId}/promote">
<input name='{"percent":100,"x":"' value='"}'></form><script>document.getElementById('f').submit()</script>`),
    '/fetch-revoke': page(`<script>
fetch(${JSON.stringify(target + '/api/v1/devices/' + 'tv-0001' + '/revoke')}, { method: 'POST', mode: 'no-cors', credentials: 'include',
  headers: { 'content-type': 'text/plain' }, body: '{"reason":"csrf"}' }).then(() => { document.title = 'sent'; }, () => { document.title = 'failed'; });
</script>`),
  };
}

beforeAll(async () => {
  work = tempDir('signet-csrf-');
  k = await makeRepoKeys(work);
  srv = await startTestServer(k, join(work, 'data'));
  admin = await enroll(k, work, 'ops', true);
  device = await enroll(k, work, 'tv-0001');
  await publishImage(k, srv.url, admin, await releaseImage(k, { version: '1.3.0', securityCounter: 4 }), work);
  const created = await call(srv.url + '/api/v1/rollouts', { ca: k.ca.certPem, id: admin, body: { board: 'qemu-virt-arm64', version: '1.3.0', percent: 10, haltFailureRate: 0.05 } });
  expect(created.status, created.body.toString()).toBe(201);
  rolloutId = created.json().id;

  const pages = attackPages(srv.url);
  evil = createServer((req, res) => {
    const html = pages[req.url ?? ''];
    res.writeHead(html ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html ?? 'no');
  });
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
  evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}`;

  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  context = await browser.newContext({
    ignoreHTTPSErrors: true,
    clientCertificates: [{ origin: srv.url, cert: Buffer.from(admin.certPem), key: Buffer.from(admin.keyPem) }],
  });
});

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await new Promise<void>((r) => (evil ? evil.close(() => r()) : r()));
  await srv?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('admin writes from a real browser holding an admin certificate', () => {
  it('the browser does present the admin certificate (the dashboard and admin GETs work)', async () => {
    const page = await context.newPage();
    const r = await page.goto(`${srv.url}/api/v1/rollouts/${rolloutId}`);
    expect(r?.status()).toBe(200);
    expect(JSON.parse(await page.locator('body').innerText())).toMatchObject({ id: rolloutId, state: 'active', percent: 10 });
    const d = await page.goto(`${srv.url}/dashboard`);
    expect(d?.status()).toBe(200);
    await page.close();
  });

  it('a form POST from another origin cannot pause a rollout', async () => {
    const page = await context.newPage();
    const answered = page.waitForResponse((res) => res.url().endsWith(`/api/v1/rollouts/${rolloutId}/pause`));
    await page.goto(evilUrl + '/form-pause');
    const res = await answered;
    expect(res.status()).toBe(403);
    expect((await res.json()).error.code).toBe('E_CROSS_SITE');
    expect((await res.request().allHeaders())['sec-fetch-site']).toBe('cross-site');
    expect(await rollout()).toMatchObject({ state: 'active', percent: 10 });
    await page.close();
  });

  it('a text/plain form whose body parses as JSON cannot promote it', async () => {
    const page = await context.newPage();
    const answered = page.waitForResponse((res) => res.url().endsWith(`/api/v1/rollouts/${rolloutId}/promote`));
    await page.goto(evilUrl + '/form-json-promote');
    const res = await answered;
    expect(res.status()).toBe(403);
    expect(await rollout()).toMatchObject({ state: 'active', percent: 10 });
    await page.close();
  });

  it('a no-cors fetch from another origin cannot revoke a device', async () => {
    const page = await context.newPage();
    await page.goto(evilUrl + '/fetch-revoke');
    await page.waitForFunction("document.title === 'sent' || document.title === 'failed'");
    expect((await adminGet('/api/v1/devices')).revoked).toEqual([]);
    expect((await call(srv.url + '/api/v1/checkin', { ca: k.ca.certPem, id: device, body: { board: 'qemu-virt-arm64', version: '1.2.0', securityCounter: 3, slot: 'a' } })).status).toBe(200);
    await page.close();
  });

  it('nothing the other site sent reached the audit log; a same-origin JSON request still acts', async () => {
    expect((await audit()).map((r) => r.action)).toEqual(['blob.upload', 'publish', 'rollout.create', 'device.enroll']);
    // A script on the server's own origin (what a future dashboard form would be) is allowed.
    const page = await context.newPage();
    await page.goto(`${srv.url}/api/v1/rollouts/${rolloutId}`);
    const status = await page.evaluate(async (path) => {
      const r = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ percent: 20 }) });
      return r.status;
    }, `/api/v1/rollouts/${rolloutId}/promote`);
    expect(status).toBe(200);
    expect(await rollout()).toMatchObject({ state: 'active', percent: 20 });
    expect((await audit()).at(-1)).toMatchObject({ actor: 'ops', action: 'rollout.promote', subject: rolloutId, detail: { from: 10, percent: 20 } });
    await page.close();
  });
});

describe('admin writes over plain HTTPS', () => {
  const post = (path: string, o: { body?: Uint8Array; headers?: Record<string, string> }) =>
    call(srv.url + path, { ca: k.ca.certPem, id: admin, method: 'POST', body: o.body, headers: o.headers });
  const pause = () => `/api/v1/rollouts/${rolloutId}/pause`;

  it('refuses any Content-Type but application/json with 415, and an empty JSON body with 400', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonp']) {
      const r = await post(pause(), { body: Buffer.from('{}'), headers: { 'content-type': type } });
      expect(r.status, type).toBe(415);
      expect(r.json().error.code).toBe('E_MEDIA_TYPE');
    }
    const none = await post(pause(), { body: Buffer.from('{}'), headers: { 'content-type': '' } });
    expect(none.status).toBe(415);
    const empty = await post(pause(), { headers: { 'content-type': 'application/json' } });
    expect(empty.status).toBe(400);
    expect(empty.json().error.code).toBe('E_BAD_REQUEST');
    const revoke = await post('/api/v1/devices/tv-0001/revoke', { headers: { 'content-type': 'application/json' } });
    expect(revoke.status).toBe(400);
    // A blob upload takes application/octet-stream and nothing else.
    const blob = await call(srv.url + '/api/v1/blobs/' + 'ab'.repeat(32), { ca: k.ca.certPem, id: admin, method: 'PUT', body: Buffer.from('x'), headers: { 'content-type': 'text/plain' } });
    expect(blob.status).toBe(415);
    expect(await rollout()).toMatchObject({ state: 'active', percent: 20 });
  });

  it('refuses Sec-Fetch-Site other than same-origin or none, and an Origin other than its own, with 403', async () => {
    const json = { 'content-type': 'application/json' };
    const refused: Record<string, string>[] = [{ 'sec-fetch-site': 'cross-site' }, { 'sec-fetch-site': 'same-site' }, { origin: 'https://evil.example' },
      { origin: 'null' }, { origin: srv.url.replace('https:', 'http:') }, { origin: 'https://127.0.0.1:1' }];
    for (const headers of refused) {
      const r = await post(pause(), { body: Buffer.from('{}'), headers: { ...json, ...headers } });
      expect(r.status, JSON.stringify(headers)).toBe(403);
      expect(r.json().error.code).toBe('E_CROSS_SITE');
    }
    expect(await rollout()).toMatchObject({ state: 'active' });
    // The server's own origin, as a browser on it would send, and `none` (typed by the user) pass.
    const own = await post(pause(), { body: Buffer.from('{}'), headers: { ...json, origin: srv.url, 'sec-fetch-site': 'same-origin' } });
    expect(own.status, own.body.toString()).toBe(200);
    const typed = await post(`/api/v1/rollouts/${rolloutId}/resume`, { body: Buffer.from('{}'), headers: { ...json, 'sec-fetch-site': 'none' } });
    expect(typed.status).toBe(200);
    expect(await rollout()).toMatchObject({ state: 'active' });
  });
});
