/**
 * The dashboard as a person sees it: Debian's Chromium, headless, driven by playwright-core,
 * loads the page from the real server and finds the fleet by board and version, the rollouts
 * with progress, failure rate and halt reason, and devices with their last check-in and last
 * error. A screenshot is saved under tests/out/.
 */
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Identity } from '../sdk/keys/device';
import { bucketOf } from '../update-server/rollout';
import { ROOT } from './helpers/cli';
import { call, enroll, makeRepoKeys, publishImage, quickDevices, releaseImage, startTestServer, tempDir, type RepoKeys, type TestServer } from './server-fixture';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const OUT = join(ROOT, 'tests', 'out');

let work: string;
let k: RepoKeys;
let srv: TestServer;
let browser: Browser;

async function checkin(d: Identity, body: Record<string, unknown>) {
  const r = await call(srv.url + '/api/v1/checkin', { ca: k.ca.certPem, id: d, body: { slot: 'a', securityCounter: 3, ...body } });
  expect(r.status, r.body.toString()).toBe(200);
  return r.json();
}

beforeAll(async () => {
  work = tempDir('signet-dashboard-');
  k = await makeRepoKeys(work);
  srv = await startTestServer(k, join(work, 'data'), { openLocal: true });
  const admin = await enroll(k, work, 'ops', true);
  await publishImage(k, srv.url, admin, await releaseImage(k, { version: '1.3.0', securityCounter: 4 }), work);
  await publishImage(k, srv.url, admin, await releaseImage(k, { version: '2.0.0', securityCounter: 4, board: 'xen-arm32' }), work);

  // A fleet: 12 arm64 devices on 1.2.0, 5 xen devices on 1.9.0, 2 arm64 already on 1.3.0.
  const tvs = quickDevices(k, Array.from({ length: 14 }, (_, i) => `tv-${String(i + 1).padStart(4, '0')}`));
  const routers = quickDevices(k, Array.from({ length: 5 }, (_, i) => `router-${i + 1}`), { board: 'xen-arm32' });
  for (const d of tvs.slice(0, 12)) await checkin(d, { board: 'qemu-virt-arm64', version: '1.2.0' });
  for (const d of tvs.slice(12)) await checkin(d, { board: 'qemu-virt-arm64', version: '1.3.0', status: 'confirmed' });
  for (const d of routers) await checkin(d, { board: 'xen-arm32', version: '1.9.0' });

  // A rollout to every arm64 device that fails on two of four and halts.
  const created = await call(srv.url + '/api/v1/rollouts', { ca: k.ca.certPem, id: admin, body: { board: 'qemu-virt-arm64', version: '1.3.0', percent: 100, haltFailureRate: 0.1, minDevices: 4 } });
  const id = created.json().id;
  const offered: Identity[] = [];
  for (const d of tvs.slice(0, 12)) if ((await checkin(d, { board: 'qemu-virt-arm64', version: '1.2.0' })).offer) offered.push(d);
  const report = (d: Identity, status: string, code?: string) =>
    call(srv.url + '/api/v1/report', { ca: k.ca.certPem, id: d, body: { rollout: id, target: 'qemu-virt-arm64/test-svc-1.3.0.simg', status, code } });
  await report(offered[0], 'confirmed');
  await report(offered[1], 'confirmed');
  await report(offered[2], 'failed', 'E_SIGNATURE');
  await report(offered[3], 'downloading');
  await report(offered[4], 'failed', 'E_DIGEST');
  // A staged rollout of the xen release, 40 %, still active.
  await call(srv.url + '/api/v1/rollouts', { ca: k.ca.certPem, id: admin, body: { board: 'xen-arm32', version: '2.0.0', percent: 40, haltFailureRate: 0.05 } });
  for (const d of routers) await checkin(d, { board: 'xen-arm32', version: '1.9.0' });
  expect(routers.some((d) => bucketOf('r2', d.id) < 40)).toBe(true);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
});

afterAll(async () => {
  await browser?.close();
  await srv?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('dashboard in headless Chromium', () => {
  it('shows fleet, rollouts and devices, and saves a screenshot', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 1100 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    page.on('pageerror', (e) => problems.push(e.message));
    const res = await page.goto(srv.url + '/dashboard');
    expect(res?.status()).toBe(200);
    expect(await page.title()).toBe('Signet update server');

    // Fleet by board and version.
    expect(await page.locator('#device-count').textContent()).toBe('19');
    const arm = page.locator('#fleet [data-board="qemu-virt-arm64"]');
    expect(await arm.locator('h3').textContent()).toContain('14 devices');
    expect(await arm.locator('tr[data-version="1.2.0"] td.num').textContent()).toBe('12');
    expect(await arm.locator('tr[data-version="1.3.0"] td.num').textContent()).toBe('2');
    expect(await page.locator('#fleet [data-board="xen-arm32"] tr[data-version="1.9.0"] td.num').textContent()).toBe('5');

    // Rollouts: the halted one says why, with its failure rate and progress.
    const halted = page.locator('#rollouts tr[data-rollout="r1"]');
    expect(await halted.getAttribute('data-state')).toBe('halted');
    expect(await halted.locator('.reason').textContent()).toBe('failure rate 0.500 (2 failed of 4 finished) exceeded the halt threshold 0.1');
    expect(await halted.locator('td.rate').textContent()).toBe('50.0%');
    expect(await halted.locator('.bar span.ok').count()).toBe(1);
    expect(await halted.locator('.bar span.bad').count()).toBe(1);
    expect(await page.locator('#halted-count').textContent()).toBe('1');
    const staged = page.locator('#rollouts tr[data-rollout="r2"]');
    expect(await staged.getAttribute('data-state')).toBe('active');
    expect((await staged.locator('td').nth(4).textContent())?.trim()).toBe('40%');

    // Devices: last check-in and last error.
    const failedRow = page.locator('#devices tbody tr').filter({ hasText: 'E_SIGNATURE' });
    expect(await failedRow.count()).toBe(1);
    expect(await page.locator('#devices tr[data-device="router-1"] td').nth(6).textContent()).toMatch(/s ago$/);
    expect(await page.locator('#devices tbody tr').count()).toBe(19);

    // The audit log: who created the rollouts, newest first.
    const audit = page.locator('#audit tbody tr');
    expect(await audit.first().getAttribute('data-action')).toBe('rollout.create');
    expect(await page.locator('#audit tr[data-action="rollout.create"] td').nth(1).textContent()).toBe('ops');
    expect(await page.locator('#audit tr[data-action="rollout.halt"] td').nth(1).textContent()).toBe('server');

    // The page runs no script at all (its CSP forbids it) and loads nothing else.
    expect(await page.locator('script').count()).toBe(0);
    expect(problems).toEqual([]);

    mkdirSync(OUT, { recursive: true });
    const shot = join(OUT, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(10_000);
    await context.close();
  });

  it('asks for an admin certificate when the client is not on loopback', async () => {
    const r = await srv.app.handle({
      method: 'GET', path: '/dashboard', query: new URLSearchParams(), headers: {}, body: (async function* () {})(),
      client: { present: false, authorized: false, roles: [] }, remoteAddress: '192.0.2.10',
    });
    expect(r.status).toBe(401);
    expect(JSON.parse(String(r.body)).error.code).toBe('E_AUTH_NO_CERT');
  });
});
