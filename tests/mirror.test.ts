// Dumb mirrors (issue 16): the real `signet server` (a child process, access log to a file),
// `signet mirror sync` exporting its repository to folders, real nginx from Debian serving them
// over HTTPS, and simulated devices (real boot stage, real agent) configured with mirror URLs.
// Devices update from the mirror while the server sees only check-ins and reports; a mirror
// serving an old copy (stale timestamp) or a tampered target is refused by TUF and the next
// mirror is used; tuf-js reads the exported layout too.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Updater } from 'tuf-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Identity } from '../sdk/keys/device';
import { SimulatedDevice } from '../sdk/ota/device';
import { AdminClient } from '../sdk/ota/repository-http';
import { appSource, SMALL_FLASH_BYTES, SMALL_LAYOUT } from './helpers/boot';
import { CLI, expectOneLineError } from './helpers/cli';
import { makeImage } from './helpers/fixtures';
import { freePort, mirrorSiteConf, passThroughConf, startNginx, type Nginx } from './helpers/nginx';
import { MtlsFetcher } from './helpers/tuf-js-mtls';
import { call, enroll, makeRepoKeys, publishImage, quickDevices, signetAsync, tempDir, type RepoKeys } from './server-fixture';

const BOARD = 'qemu-virt-arm64';

let work: string;
let k: RepoKeys;
let server: ChildProcess;
let url: string;
let data: string;
let admin: AdminClient;
let adminId: Identity;
let adminDir: string;
let nginx: Nginx;
let www: string;
let rootBytes: Uint8Array;
let factory: Uint8Array;
let counter = 3;

async function startServer(): Promise<void> {
  server = spawn(process.execPath, [CLI, 'server', '--data', data, '--keys', k.serverKeys, '--port', '0', '--json', '--access-log', 'file'], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SIGNET_PASSPHRASE: '' },
  });
  url = await new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    server.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)).url);
    });
    server.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    server.on('exit', (code, sig) => reject(new Error(`signet server exited (${code ?? sig}): ${err}`)));
  });
}

interface LogLine { identity: string; method: string; route: string; status: number; bytes: number }

/** The server's access log, once it has stopped growing (lines are written as responses end). */
async function accessLog(): Promise<LogLine[]> {
  const path = join(data, 'access.log');
  let prev = -1;
  for (;;) {
    const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
    if (text.length === prev) return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogLine);
    prev = text.length;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function sync(to: string, extra: string[] = []) {
  return signetAsync(['mirror', 'sync', '--server', url, '--to', to, '--admin', adminDir, ...extra]);
}

async function release(version: string): Promise<string> {
  const image = await makeImage({ version, securityCounter: ++counter, app: appSource('svc', true), signers: [k.targets] });
  await publishImage(k, url, adminId, image, work);
  await admin.json('POST', '/api/v1/rollouts', { board: BOARD, version, percent: 100, haltFailureRate: 0.5 });
  return version;
}

function devices(prefix: string, n: number, mirrors: string[]): SimulatedDevice[] {
  return quickDevices(k, Array.from({ length: n }, (_, i) => `${prefix}-${i + 1}`)).map((id) => SimulatedDevice.provision({
    dir: join(work, 'devices', id.id), id: id.id, board: BOARD, layout: SMALL_LAYOUT, rootBytes,
    serverUrl: url, mirrors, tls: { ca: id.caPem, cert: id.certPem, key: id.keyPem },
    factoryImage: factory, flashBytes: SMALL_FLASH_BYTES, securityFloor: 3,
  }));
}

/** One update cycle and the trial boot that follows: the version the device runs after. */
async function update(d: SimulatedDevice): Promise<string> {
  const r = await d.checkForUpdate();
  if (r.outcome === 'staged') {
    const b = await d.boot();
    expect(b).toMatchObject({ trial: true, confirmed: true });
    await d.boot();
  }
  return d.status().version;
}

beforeAll(async () => {
  work = tempDir('signet-mirror-');
  k = await makeRepoKeys(work);
  data = join(work, 'data');
  await startServer();
  adminId = await enroll(k, work, 'ops', true);
  adminDir = join(work, 'ids', 'ops');
  admin = new AdminClient(url, adminId);
  rootBytes = new Uint8Array(readFileSync(join(k.keys, 'root.json')));
  factory = await makeImage({ version: '1.2.0', securityCounter: 3, app: appSource('svc', true), signers: [k.targets] });
  www = join(work, 'www');
  mkdirSync(www);
  const port = await freePort();
  nginx = await startNginx(port, (dir) => mirrorSiteConf(dir, {
    port, root: www, certPath: join(k.serverKeys, 'server.crt'), keyPath: join(k.serverKeys, 'server.key'),
  }));
}, 120_000);

afterAll(async () => {
  await nginx?.stop();
  if (server && server.exitCode === null) {
    await new Promise((r) => { server.once('exit', r); server.kill('SIGTERM'); });
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('mirrors served by nginx', () => {
  let fleet: SimulatedDevice[];

  it('devices update from the mirror; the API sees only their check-ins and reports', async () => {
    await release('1.3.0');
    const s = await sync(join(www, 'main'));
    expect(s.stderr).toBe('');
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/timestamp v\d+, snapshot v\d+, targets v1, root v1; \d+ file\(s\) written/);
    expect(readdirSync(join(www, 'main', 'metadata')).sort()).toEqual(['1.root.json', '1.snapshot.json', '1.targets.json', 'timestamp.json']);

    fleet = devices('tv', 4, [nginx.url + '/main']);
    const before = (await accessLog()).length;
    for (const d of fleet) {
      expect(await d.boot()).toMatchObject({ slot: 'a', version: '1.2.0' });
      expect(await update(d)).toBe('1.3.0');
    }
    const mine = (await accessLog()).slice(before).filter((l) => l.identity.startsWith('device:tv-'));
    const routes = new Set(mine.map((l) => l.route));
    expect([...routes].sort()).toEqual(['/api/v1/checkin', '/api/v1/report']);
    // Every device fetched metadata and its image from nginx.
    const got = nginx.accessLines().filter((l) => / GET \/main\/targets\/qemu-virt-arm64\/[0-9a-f]{64}\.test-svc-1\.3\.0\.simg 200 /.test(l));
    expect(got).toHaveLength(fleet.length);
    const status = await admin.json<{ counts: Record<string, number> }>('GET', '/api/v1/rollouts/r1');
    expect(status.counts).toMatchObject({ confirmed: fleet.length, failed: 0 });
  });

  it('tuf-js reads the exported layout from nginx', async () => {
    const dir = join(work, 'tufjs');
    mkdirSync(join(dir, 'meta'), { recursive: true });
    mkdirSync(join(dir, 'targets'));
    writeFileSync(join(dir, 'meta', 'root.json'), rootBytes);
    const device = quickDevices(k, ['tufjs-1'])[0];
    const u = new Updater({
      metadataDir: join(dir, 'meta'), targetDir: join(dir, 'targets'),
      metadataBaseUrl: nginx.url + '/main/metadata', targetBaseUrl: nginx.url + '/main/targets', fetcher: new MtlsFetcher(device),
    });
    await u.refresh();
    const info = await u.getTargetInfo(BOARD + '/test-svc-1.3.0.simg');
    expect(info).toBeDefined();
    const path = await u.downloadTarget(info!);
    expect(readFileSync(path).length).toBe(info!.length);
  });

  it('a mirror serving an old copy (stale timestamp) is refused and the next mirror is used', async () => {
    // The old copy: the folder as it was at 1.3.0.
    cpSync(join(www, 'main'), join(www, 'stale'), { recursive: true });
    await release('1.4.0');
    expect((await sync(join(www, 'main'))).code).toBe(0);
    const mirrors = [nginx.url + '/stale', nginx.url + '/main'];
    const ids = quickDevices(k, fleet.map((d) => d.id));
    for (const d of fleet) d.shutdown();
    fleet = ids.map((id) => new SimulatedDevice({
      dir: join(work, 'devices', id.id), id: id.id, board: BOARD, layout: SMALL_LAYOUT, rootBytes, serverUrl: url, mirrors,
      tls: { ca: id.caPem, cert: id.certPem, key: id.keyPem },
    }));
    // The old copy still verifies (unexpired, the version they hold) but lacks the offered release.
    for (const d of fleet) {
      await d.boot();
      expect(await update(d)).toBe('1.4.0');
      expect(d.lines.join('\n')).toMatch(/ota\[MIRROR\] source=\S+\/stale refused reason=E_TARGET_UNKNOWN next=\S+\/main/);
    }
    // Now they have seen a newer timestamp: the old one is a rollback (TUF 5.4.3), refused as such.
    await release('1.4.1');
    expect((await sync(join(www, 'main'))).code).toBe(0);
    for (const d of fleet) {
      d.lines.length = 0;
      expect(await update(d)).toBe('1.4.1');
      expect(d.lines.join('\n')).toMatch(/ota\[MIRROR\] source=\S+\/stale refused reason=E_META_ROLLBACK next=\S+\/main/);
    }
  });

  it('a tampered target on a mirror is refused and the next mirror is used', async () => {
    await release('1.5.0');
    expect((await sync(join(www, 'main'))).code).toBe(0);
    cpSync(join(www, 'main'), join(www, 'evil'), { recursive: true });
    const dir = join(www, 'evil', 'targets', BOARD);
    const file = readdirSync(dir).find((f) => f.endsWith('test-svc-1.5.0.simg'))!;
    const bytes = readFileSync(join(dir, file));
    bytes[bytes.length - 1] ^= 0x01;
    writeFileSync(join(dir, file), bytes);
    const [d] = devices('tamper', 1, [nginx.url + '/evil', nginx.url + '/main']);
    await d.boot();
    expect(await update(d)).toBe('1.5.0');
    expect(d.lines.join('\n')).toMatch(/ota\[MIRROR\] source=\S+\/evil refused reason=E_TARGET_HASH next=\S+\/main/);
    // The only mirror tampered: refused, nothing staged, and the server hears why.
    const [alone] = devices('alone', 1, [nginx.url + '/evil']);
    await alone.boot();
    await expect(alone.checkForUpdate()).rejects.toMatchObject({ code: 'E_TARGET_HASH' });
    expect(alone.status()).toMatchObject({ version: '1.2.0', slot: 'a' });
    for (const x of [d, alone, ...fleet]) x.shutdown();
  });

  it('an unreachable mirror is skipped; with serverFallback the server itself comes last', async () => {
    const dead = `https://127.0.0.1:${await freePort()}/signet`;
    const id = quickDevices(k, ['fallback-1'])[0];
    const d = SimulatedDevice.provision({
      dir: join(work, 'devices', id.id), id: id.id, board: BOARD, layout: SMALL_LAYOUT, rootBytes, serverUrl: url,
      mirrors: [dead], serverFallback: true, tls: { ca: id.caPem, cert: id.certPem, key: id.keyPem },
      factoryImage: factory, flashBytes: SMALL_FLASH_BYTES, securityFloor: 3,
    });
    await d.boot();
    const before = (await accessLog()).length;
    expect(await update(d)).toBe('1.5.0');
    expect(d.lines.join('\n')).toContain(`ota[MIRROR] source=${dead} refused reason=E_FETCH_NETWORK next=${url}/tuf`);
    const routes = (await accessLog()).slice(before).filter((l) => l.identity === 'device:fallback-1').map((l) => l.route);
    expect(routes.filter((r) => r.startsWith('/tuf/targets/'))).toHaveLength(1);
    d.shutdown();
    // A mirror list entry that is not an http(s) URL is refused when the agent is made.
    expect(() => devices('badmirror', 1, ['ftp://127.0.0.1/signet'])).toThrow(expect.objectContaining({ code: 'E_AGENT_MIRROR' }));
  });

  it('files the current snapshot no longer names are pruned only after the grace period', async () => {
    const to = join(www, 'main');
    const before = readdirSync(join(to, 'metadata'));
    expect(before.filter((f) => f.endsWith('.snapshot.json')).length).toBeGreaterThan(1);
    // Earlier syncs marked the old files unreferenced; a day's grace keeps them, none removes them.
    const big = await sync(to, ['--grace', '86400']);
    expect(big.stdout).toMatch(/up to date .*; 0 pruned/);
    const first = await sync(to, ['--grace', '0']);
    expect(first.stdout).toMatch(/up to date .*; [1-9]\d* pruned/);
    const after = readdirSync(join(to, 'metadata')).sort();
    expect(after.filter((f) => f.endsWith('.snapshot.json'))).toHaveLength(1);
    expect(after.filter((f) => f.endsWith('.root.json'))).toEqual(['1.root.json']);
    // The targets metadata still names every release: all four images stay.
    expect(readdirSync(join(to, 'targets', BOARD)).filter((f) => f.endsWith('.simg'))).toHaveLength(4);
    // A named file removed from the folder is written again by the next sync.
    const img = readdirSync(join(to, 'targets', BOARD)).find((f) => f.endsWith('.simg'))!;
    rmSync(join(to, 'targets', BOARD, img));
    expect((await sync(to)).stdout).toMatch(/; 1 file\(s\) written|; \d+ file\(s\) written/);
    expect(existsSync(join(to, 'targets', BOARD, img))).toBe(true);
  });

  it('--watch keeps the mirror in step with new releases until SIGTERM', async () => {
    const to = join(www, 'main');
    const tsVersion = () => JSON.parse(readFileSync(join(to, 'metadata', 'timestamp.json'), 'utf8')).signed.version as number;
    const was = tsVersion();
    const child = spawn(process.execPath, [CLI, 'mirror', 'sync', '--server', url, '--to', to, '--admin', adminDir, '--watch', '--interval', '1'], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SIGNET_PASSPHRASE: '' },
    });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await release('1.6.0');
    for (let i = 0; i < 600 && tsVersion() === was; i++) await new Promise((r) => setTimeout(r, 100));
    expect(tsVersion()).toBeGreaterThan(was);
    const [d] = devices('watch', 1, [nginx.url + '/main']);
    await d.boot();
    expect(await update(d)).toBe('1.6.0');
    d.shutdown();
    const code = await new Promise((r) => { child.once('exit', (c) => r(c)); child.kill('SIGTERM'); });
    expect(code).toBe(0);
    expect(out).toMatch(/file\(s\) written/);
  });

  it('the load-balancer rig: nginx stream pass-through in front of the server, mutual TLS still names the device', async () => {
    const port = await freePort();
    const lb = await startNginx(port, (dir) => passThroughConf(dir, { port, upstreams: [new URL(url).host] }));
    try {
      const [d] = devices('lb', 1, [nginx.url + '/main']).map((x) => new SimulatedDevice({
        dir: join(work, 'devices', x.id), id: x.id, board: BOARD, layout: SMALL_LAYOUT, rootBytes, serverUrl: lb.url, mirrors: [nginx.url + '/main'],
        tls: quickDevices(k, [x.id]).map((id) => ({ ca: id.caPem, cert: id.certPem, key: id.keyPem }))[0],
      }));
      const before = (await accessLog()).length;
      await d.boot();
      expect(await update(d)).toBe('1.6.0');
      d.shutdown();
      // The server terminated TLS itself: it saw the device's certificate, through nginx.
      const seen = (await accessLog()).slice(before).filter((l) => l.identity === 'device:lb-1').map((l) => l.route);
      expect(seen).toContain('/api/v1/checkin');
      expect(seen).toContain('/api/v1/report');
      // No certificate: refused by the server behind nginx, not by nginx.
      const anon = await call(lb.url + '/api/v1/checkin', { ca: k.ca.certPem, body: {} });
      expect(anon.status).toBe(401);
      expect(anon.json().error.code).toBe('E_AUTH_NO_CERT');
      // nginx logs a stream session when it closes (the device's keep-alive ones may still be open).
      expect(lb.accessLines().filter((l) => l.includes(new URL(url).host)).length).toBeGreaterThanOrEqual(1);
    } finally {
      await lb.stop();
    }
  });

  it('every bad input is one coded line and leaves the folder as it was', async () => {
    const notMirror = join(work, 'not-a-mirror');
    mkdirSync(notMirror);
    writeFileSync(join(notMirror, 'index.html'), 'hello');
    expectOneLineError(await sync(notMirror), 'E_MIRROR_DIR');
    expect(readdirSync(notMirror)).toEqual(['index.html']);
    expectOneLineError(await sync(join(work, 'm1'), ['--interval', '5']), 'E_MIRROR_OPTION');
    expectOneLineError(await sync(join(work, 'm1'), ['--watch', '--interval', 'soon']), 'E_MIRROR_OPTION');
    expectOneLineError(await sync(join(work, 'm1'), ['--grace=-1']), 'E_MIRROR_OPTION');
    expectOneLineError(await signetAsync(['mirror', 'sync', '--server', url, '--admin', adminDir]), 'E_MIRROR_OPTION');
    expectOneLineError(await signetAsync(['mirror', 'sync', '--server', 'http://127.0.0.1:1', '--to', join(work, 'm1'), '--admin', adminDir]), 'E_MIRROR_SERVER');
    const closed = await freePort();
    expectOneLineError(await signetAsync(['mirror', 'sync', '--server', `https://127.0.0.1:${closed}`, '--to', join(work, 'm1'), '--admin', adminDir]), 'E_MIRROR_UNREACHABLE');
    expect(existsSync(join(work, 'm1', 'metadata'))).toBe(false);
    writeFileSync(join(work, 'bad-root.json'), '{"signed":{}}');
    expectOneLineError(await sync(join(work, 'm1'), ['--root', join(work, 'bad-root.json')]), 'E_MIRROR_ROOT');
    // Another sync holds the folder (a live process's lock).
    writeFileSync(join(www, 'main', '.signet-mirror.lock'), String(process.pid));
    expectOneLineError(await sync(join(www, 'main')), 'E_MIRROR_BUSY');
    rmSync(join(www, 'main', '.signet-mirror.lock'));
  });

  it('signet device simulate --mirror: a device from the command line updates from the mirror', async () => {
    const id = await enroll(k, work, 'cli-dev');
    const dir = join(work, 'ids', 'cli-dev');
    const factoryFile = join(work, 'factory.simg');
    writeFileSync(factoryFile, factory);
    const base = ['device', 'simulate', '--dir', dir, '--board', BOARD, '--root', join(k.keys, 'root.json'), '--server', url, '--factory', factoryFile];
    expectOneLineError(await signetAsync([...base, '--mirror', 'ftp://127.0.0.1/signet']), 'E_AGENT_MIRROR');
    expect(existsSync(join(dir, 'flash.img'))).toBe(false);
    const before = (await accessLog()).length;
    const r = await signetAsync([...base, '--mirror', nginx.url + '/main', '--json']);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ update: { outcome: 'staged' }, running: { version: '1.6.0', confirmed: true } });
    const routes = (await accessLog()).slice(before).filter((l) => l.identity === 'device:' + id.id).map((l) => l.route);
    expect(routes.length).toBeGreaterThan(0);
    expect(routes.filter((x) => !x.startsWith('/api/v1/'))).toEqual([]);
  });

  it('a blob the server serves wrong is refused: the mirror keeps serving its last complete snapshot', async () => {
    const blobs = join(data, 'blobs');
    // A new release whose blob is damaged on the server after upload.
    const image = await makeImage({ version: '1.7.0', securityCounter: ++counter, app: appSource('svc', true), signers: [k.targets] });
    await publishImage(k, url, adminId, image, work);
    const sha = createHash('sha256').update(image).digest('hex');
    const blob = join(blobs, sha.slice(0, 2), sha);
    const damaged = readFileSync(blob);
    damaged[damaged.length - 1] ^= 0x01;
    writeFileSync(blob, damaged);
    const main = join(www, 'main');
    const tsBefore = readFileSync(join(main, 'metadata', 'timestamp.json'));
    const metaBefore = readdirSync(join(main, 'metadata')).sort();
    expectOneLineError(await sync(main), 'E_MIRROR_TARGET');
    expect(readFileSync(join(main, 'metadata', 'timestamp.json')).equals(tsBefore)).toBe(true);
    expect(readdirSync(join(main, 'metadata')).sort()).toEqual(metaBefore);
    expect(readdirSync(join(main, 'targets', BOARD)).filter((f) => f.includes('1.7.0') || f.startsWith('.signet-tmp-'))).toEqual([]);
    // A new mirror from the same server: nothing a device could start from.
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
        else files.push(join(d, e.name));
      }
    };
    walk(blobs);
    for (const f of files) {
      const b = readFileSync(f);
      b[b.length - 1] ^= 0x01;
      writeFileSync(f, b);
    }
    const to = join(work, 'm2');
    expectOneLineError(await sync(to), 'E_MIRROR_TARGET');
    expect(existsSync(join(to, 'metadata', 'timestamp.json'))).toBe(false);
  });
});
