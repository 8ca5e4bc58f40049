// The OTA agent on the device, for real: a qemu-virt-arm64 guest booted through U-Boot verified
// boot from its factory disk (examples/hello 1.2.0 and boot image 1.0.0 on A/B boot slots,
// `signet disk --boot-ab`), given its update-server
// identity by `signet device provision --identity` (client certificate and key from `signet
// device enroll`, into the config store; nothing in the image), updates itself from a real
// `signet server` (SQLite, HTTPS with mutual TLS, bound to 127.0.0.1; the guest dials it as
// 10.0.2.2 through QEMU's user network) to app 1.3.0 and boot image 2.0.0 (one combined
// release; boot 2.0.0's boot stage prints boot[BOOT-IMAGE] version=2.0.0): the boot stage starts
// the agent next to the app, it checks in (reporting the boot image it runs), runs the TUF client,
// downloads both, verifies (the FIT with the C host's SHA-256 and mbedTLS RSA) before any write,
// stages the app into slot B and the boot image into boot_b, arms U-Boot's trial and reboots;
// U-Boot trial-boots boot_b, the boot stage trial-boots app slot B, the app confirms (app slot and
// boot slot) and the agent reports both confirmed. Only `signet publish` and `signet rollout
// create` are run from here; QEMU runs with -no-reboot, so the guest's reboot ends it and the
// test powers it on again (what a reset does). Two boots.
//
// Node-side tests of the same pieces (schedule, the device fetcher with mutual TLS against the
// same server) run first, without QEMU. Timeouts are liveness bounds, not assertions.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBoard } from '../sdk/board';
import { CheckinSchedule, parseHttpDate, ServerClock } from '../sdk/ota/agent-device';
import { DeviceFetcher, parseRetryAfter } from '../sdk/ota/fetcher-device';
import { fetchBytes } from '../sdk/ota/fetcher';
import { OtaError } from '../sdk/ota/errors';
import { utf8Decode, utf8Encode } from '../sdk/util/bytes';
import type { SignetError } from '../sdk/util/errors';
import { CLI, ROOT, expectOneLineError, signet } from './helpers/cli';
import { serverListening } from './helpers/server-child';

const board = loadBoard('qemu-virt-arm64');
const available = existsSync(board.qemu!.firmware!) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const BOOT_TIMEOUT = 900_000; // TCG on a loaded 2-core machine; a liveness bound only
const DEVICE = 'dev-0001';

let work: string;
let server: ChildProcess | undefined;
let url: string;
const at = (p: string) => join(work, p);
const ok = (args: string[], timeout = 300_000) => {
  const r = signet(args, { cwd: work, timeout });
  if (r.code !== 0) throw new Error(`signet ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
};

beforeAll(async () => {
  mkdirSync(cacheRoot, { recursive: true });
  work = mkdtempSync(join(cacheRoot, 'device-ota-'));
  ok(['keys', 'init', '--dir', at('keys')]);
  for (const [v, c] of [['1.2.0', '3'], ['1.3.0', '4']]) {
    ok(['build', '--project', join(ROOT, 'examples/hello'), '--version', v, '--security-counter', c, '--keys', at('keys'), '--out', at(`app-${v}.simg`), '--no-typecheck']);
  }
  ok(['server', 'keys', '--keys', at('keys'), '--out', at('server-keys')]);
  server = spawn(process.execPath, [CLI, 'server', '--data', at('ota-data'), '--keys', at('server-keys'), '--port', '0', '--bind', '127.0.0.1', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  url = (await serverListening(server)).url;
  ok(['device', 'enroll', '--admin', '--id', 'admin', '--keys', at('keys'), '--out', at('admin')]);
  ok(['device', 'enroll', '--id', DEVICE, '--board', board.id, '--keys', at('keys'), '--out', at(`devices/${DEVICE}`)]);
  ok(['device', 'enroll', '--id', 'node-0001', '--board', board.id, '--keys', at('keys'), '--out', at('devices/node-0001')]);
}, 600_000);

afterAll(() => {
  server?.kill('SIGTERM');
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the device agent\'s pieces on Node', () => {
  it('schedules check-ins with jitter, backs off on failures, honours Retry-After and starts over after a success', () => {
    let r = 0;
    const s = new CheckinSchedule({ intervalS: 100, firstS: 10, jitter: 0.5, retryS: 4, maxBackoffS: 60, random: () => r });
    expect(s.first()).toBe(10_000);
    r = 1;
    expect(s.first()).toBe(15_000);
    const fail = new OtaError('E_FETCH_NETWORK', 'down');
    r = 1;
    expect([1, 2, 3, 4, 5, 6].map(() => s.after(fail))).toEqual([4000, 8000, 16_000, 32_000, 60_000, 60_000]);
    r = 0;
    expect(s.after(fail)).toBe(30_000); // half the back-off at least
    const limited = new OtaError('E_FETCH_HTTP', '429') as SignetError & { retryAfterS?: number };
    limited.retryAfterS = 120;
    expect(s.after(limited)).toBe(120_000);
    expect(s.failuresInARow()).toBe(8);
    expect(s.after(null)).toBe(100_000);
    expect(s.failuresInARow()).toBe(0);
    expect(s.after(fail)).toBe(2000);
    expect(parseRetryAfter(' 7 ')).toBe(7);
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:28:00 GMT')).toBeNull();
  });

  it('takes the time from the API server\'s Date only when the device has no clock, and never from a mirror', () => {
    expect(parseHttpDate('Sun, 06 Dec 2026 16:20:00 GMT')).toBe(Date.UTC(2026, 11, 6, 16, 20, 0) / 1000);
    expect(parseHttpDate('Sunday, 06-Dec-26 16:20:00 GMT')).toBeNull();
    expect(parseHttpDate('Sun, 06 Dek 2026 16:20:00 GMT')).toBeNull();
    let mono = 5;
    let own: number | null = null;
    const c = new ServerClock('https://10.0.2.2:8443/', () => own, () => mono);
    expect(c.now()).toBeNull();
    c.observe('https://mirror.example/metadata/timestamp.json', { date: 'Sun, 06 Dec 2026 16:20:00 GMT' });
    c.observe('https://10.0.2.2:8443/tuf/metadata/timestamp.json', { date: 'Sun, 06 Dec 2026 16:20:00 GMT' });
    expect(c.source()).toBe('none');
    c.observe('https://10.0.2.2:8443/api/v1/checkin', { date: 'Sun, 06 Dec 2026 16:20:00 GMT' });
    expect(c.source()).toBe('server');
    mono = 65;
    expect(c.now()).toBe(Date.UTC(2026, 11, 6, 16, 21, 0) / 1000);
    own = 1_900_000_000;
    expect(c.now()).toBe(1_900_000_000);
    expect(c.source()).toBe('device');
  });

  it('maps answers as the fetcher contract says: 429 with Retry-After is transient, Range resumes, 404 and 4xx are coded', async () => {
    const srv = createServer((req, res) => {
      if (req.url === '/busy') return res.writeHead(429, { 'retry-after': '7' }).end('{"error":{"code":"E_RATE_LIMITED"}}');
      if (req.url === '/gone') return res.writeHead(404).end();
      if (req.url === '/denied') return res.writeHead(403).end('{"error":{"code":"E_AUTH_REVOKED"}}');
      const body = 'abcdefghij';
      const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''));
      if (req.url === '/ranged' && range) {
        return res.writeHead(206, { 'content-range': `bytes ${range[1]}-9/10` }).end(body.slice(Number(range[1])));
      }
      res.writeHead(200).end(body); // /plain ignores Range
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const base = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    const get = (path: string, offset?: number, maxBytes = 100) => new Promise<{ err: SignetError | null; text?: string }>((resolve) => {
      fetchBytes(new DeviceFetcher(), { url: base + path, maxBytes, offset }, (err, b) => resolve({ err, text: b ? utf8Decode(b)! : undefined }));
    });
    try {
      const busy = await get('/busy');
      expect(busy.err?.code).toBe('E_FETCH_HTTP');
      expect((busy.err as SignetError & { retryAfterS?: number }).retryAfterS).toBe(7);
      expect((await get('/gone')).err?.code).toBe('E_FETCH_NOT_FOUND');
      const denied = await get('/denied');
      expect(denied.err?.code).toBe('E_FETCH_REFUSED');
      expect(denied.err?.message).toContain('E_AUTH_REVOKED');
      expect(await get('/ranged', 4)).toEqual({ err: null, text: 'efghij' });
      expect(await get('/plain', 4)).toEqual({ err: null, text: 'efghij' });
      expect((await get('/plain', 0, 5)).err?.code).toBe('E_FETCH_TOO_LARGE');
      expect((await get('/plain', 5, 5)).err?.code).toBe('E_FETCH_RANGE');
    } finally {
      srv.close();
    }
  });

  it('checks in over the runtime\'s fetch with mutual TLS; without the device certificate the server refuses', async () => {
    const id = (f: string) => readFileSync(at(`devices/node-0001/${f}`), 'utf8');
    const tls = { ca: id('vendor-ca.crt'), cert: id('client.crt'), key: id('client.key'), servername: 'localhost' };
    const post = (f: DeviceFetcher) => new Promise<{ err: SignetError | null; bytes?: Uint8Array }>((resolve) => {
      fetchBytes(f, {
        url: url + '/api/v1/checkin', method: 'POST', maxBytes: 65536,
        body: utf8Encode(JSON.stringify({ board: board.id, version: '1.2.0', securityCounter: 3, slot: 'a' })),
      }, (err, bytes) => resolve({ err, bytes }));
    });
    const good = await post(new DeviceFetcher({ tls }));
    expect(good.err).toBeNull();
    expect(JSON.parse(utf8Decode(good.bytes!)!)).toMatchObject({ offer: null });
    const anonymous = await post(new DeviceFetcher({ tls: { ca: tls.ca, servername: 'localhost' } }));
    expect(anonymous.err?.code).toMatch(/^E_FETCH_(REFUSED|NETWORK)$/);
    // A cap below the answer's size stops the transfer while it streams.
    const capped = await new Promise<SignetError | null>((resolve) => {
      fetchBytes(new DeviceFetcher({ tls }), { url: url + '/tuf/metadata/1.root.json', maxBytes: 100 }, (err) => resolve(err));
    });
    expect(capped?.code).toBe('E_FETCH_TOO_LARGE');
  });
});

describe.skipIf(!available)('a qemu-virt-arm64 guest updates itself over the air (app 1.2.0 → 1.3.0)', () => {
  let first = '';
  let second = '';
  type RolloutStatus = { target: string; counts: Record<string, number>; state: string };
  let statuses: RolloutStatus[] = [];
  const BOOT_TARGET = `${board.id}/boot-2.0.0.itb`;

  /** `signet run` until QEMU exits (the guest rebooted) or `until` is seen; then QEMU is stopped. */
  async function boot(label: string, until: ((console_: string) => boolean) | null): Promise<string> {
    let out = '';
    const run = spawn(process.execPath, [CLI, 'run', at('disk.img'), '--board', board.id, '--key-dtb', at('pub.dtb'), '--net', 'user'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Also in a file, to follow a slow boot while it runs (removed with the work folder).
    const take = (d: Buffer) => {
      out += d.toString('latin1');
      appendFileSync(at(`console-${label.replace(/\W+/g, '-')}.log`), d);
    };
    run.stdout!.on('data', take);
    run.stderr!.on('data', take);
    const exited = new Promise((r) => run.once('exit', r));
    const deadline = Date.now() + BOOT_TIMEOUT;
    try {
      while (run.exitCode === null && run.signalCode === null && !(until && until(out))) {
        if (Date.now() > deadline) throw new Error(`${label}: the guest did not finish; console:\n` + out.slice(-4000));
        await new Promise((r) => setTimeout(r, 500));
      }
    } finally {
      if (run.exitCode === null && run.signalCode === null) {
        const qemu = spawnSync('pgrep', ['-P', String(run.pid), '-f', 'qemu-system'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
        for (const pid of qemu) try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
        run.kill('SIGTERM');
        await exited;
      }
    }
    return out;
  }

  const rollouts = (): RolloutStatus[] => JSON.parse(ok(['rollout', 'status', '--json', '--server', url, '--admin', at('admin')]));

  beforeAll(async () => {
    ok(['disk', at('app-1.2.0.simg'), '--board', board.id, '--keys', at('keys'), '--out', at('disk.img'), '--key-dtb', at('pub.dtb'),
      '--boot-ab', '--boot-version', '1.0.0', '--boot-security-counter', '1'], 600_000);
    ok(['fit', '--board', board.id, '--keys', at('keys'), '--out', at('boot-2.0.0.itb'), '--version', '2.0.0', '--security-counter', '2'], 600_000);
    const port = new URL(url).port;
    // The identity must be this device's, for this board: anything else is one coded line and no write.
    const before = readFileSync(at('disk.img'));
    for (const wrong of [at('admin'), at('devices/node-0001'), at('devices/nobody')]) {
      expectOneLineError(signet(['device', 'provision', '--disk', at('disk.img'), '--id', DEVICE, '--board', board.id, '--identity', wrong,
        '--set', `ota.server=https://10.0.2.2:${port}`], { cwd: work }), 'E_PROVISION_IDENTITY');
    }
    expect(readFileSync(at('disk.img')).equals(before)).toBe(true);
    ok(['device', 'provision', '--disk', at('disk.img'), '--id', DEVICE, '--board', board.id, '--ca-dir', at('keys'),
      '--identity', at(`devices/${DEVICE}`), '--set', `ota.server=https://10.0.2.2:${port}`, '--set', 'ota.servername=localhost',
      '--set', 'ota.first-s=1', '--set', 'ota.interval-s=5']);
    // The release and its rollout: the only steps taken from outside the guest.
    ok(['publish', at('app-1.3.0.simg'), '--server', url, '--keys', at('keys'), '--admin', at('admin')]);
    ok(['publish', at('boot-2.0.0.itb'), '--server', url, '--keys', at('keys'), '--admin', at('admin')]);
    ok(['rollout', 'create', '--board', board.id, '--version', '1.3.0', '--boot-version', '2.0.0', '--percent', '100', '--halt-failure-rate', '0.5',
      '--server', url, '--admin', at('admin')]);
    // Boot 1: the factory image; the agent stages 1.3.0 and reboots (QEMU exits on -no-reboot).
    first = await boot('factory boot', (c) => /boot\[RECOVERY\]|host\[ERROR\]|ota\[DISABLED\]/.test(c) || (c.match(/ota\[RETRY\]/g) ?? []).length >= 3);
    // Boot 2: the trial, confirmed by the app; wait until the server has the confirmation.
    if (!first.includes('ota[REBOOT]')) return; // nothing staged: the first test says why
    let confirmedAt = 0;
    second = await boot('trial boot', (c) => {
      if (/boot\[RECOVERY\]|host\[ERROR\]|ota\[DISABLED\]/.test(c) || (c.match(/ota\[RETRY\]/g) ?? []).length >= 3) return true;
      // The agent reports both confirmations before its first check-in; check-ins without them: stop.
      if (!/ota\[REPORT\] status=confirmed target=\S+boot-2\.0\.0\.itb/.test(c)) return (c.match(/ota\[CHECKIN\]/g) ?? []).length >= 4;
      if (!/boot\[CONFIRM\]/.test(c)) return false;
      if (Date.now() - confirmedAt < 2000) return false;
      confirmedAt = Date.now();
      statuses = rollouts();
      return statuses.length === 2 && statuses.every((s) => s.counts.confirmed === 1);
    });
  }, 3 * BOOT_TIMEOUT);

  it('boots the factory image (boot 1.0.0 from boot_a), checks in with its certificate, verifies and stages app 1.3.0 into slot B and boot image 2.0.0 into boot_b, and reboots', () => {
    expect(first).toMatch(/sha256,rsa2048:fit\+ OK/);
    expect(first).toContain('boot[BOOT-IMAGE] version=1.0.0 counter=1');
    expect(first).toContain('boot[OK] slot=a version=1.2.0');
    expect(first).toMatch(/ota\[AGENT\] server=https:\/\/10\.0\.2\.2:\d+/);
    expect(first).toMatch(/ota\[OFFER\] target=qemu-virt-arm64\/\S+-1\.3\.0\.simg version=1\.3\.0/);
    expect(first).toContain('boot[STAGED] slot=b version=1.3.0');
    expect(first).toContain(`ota[BOOT-OFFER] target=${BOOT_TARGET} version=2.0.0`);
    // The boot-slot write starts only after the download verified, and is armed after it read back.
    const write = first.indexOf('ota[BOOT-WRITE] start slot=b');
    expect(write).toBeGreaterThan(first.indexOf(`ota[REPORT] status=downloading target=${BOOT_TARGET}`));
    expect(first.indexOf('ota[BOOT-ARMED] slot=b version=2.0.0')).toBeGreaterThan(write);
    expect(first).toContain(`ota[BOOT-STAGED] target=${BOOT_TARGET} slot=b version=2.0.0`);
    expect(first).toContain(`ota[REPORT] status=staged target=${BOOT_TARGET}`);
    expect(first).toContain('ota[REBOOT] slot=b version=1.3.0 boot_slot=b boot_version=2.0.0');
    expect(first).not.toMatch(/host\[(WARN|ERROR)\]|ota\[(DISABLED|REFUSED|BOOT-DISABLED|BOOT-REFUSED)\]/);
  });

  it('trial-boots boot image 2.0.0 from boot_b and app 1.3.0 from slot B, confirms both, and the server shows the device confirmed on both', () => {
    expect(second).toContain('boot[BOOT-IMAGE] version=2.0.0 counter=2'); // the new initramfs, in the console
    expect(second).toContain('boot[TRIAL] slot=b version=1.3.0');
    expect(second).toContain('boot[CONFIRM] slot=b version=1.3.0 floor=4');
    expect(second).toContain('boot[BOOT-CONFIRM] slot=b tries=1');
    expect(second).toMatch(/ota\[REPORT\] status=booted-trial target=\S+-1\.3\.0\.simg/);
    expect(second).toMatch(/ota\[REPORT\] status=confirmed target=\S+-1\.3\.0\.simg/);
    expect(second).toContain(`ota[REPORT] status=booted-trial target=${BOOT_TARGET}`);
    expect(second).toContain(`ota[REPORT] status=confirmed target=${BOOT_TARGET}`);
    expect(second).not.toMatch(/host\[(WARN|ERROR)\]|ota\[(DISABLED|REFUSED|BOOT-REFUSED|BOOT-REPORT)\]|boot\[RECOVERY\]/);
    expect(statuses).toHaveLength(2);
    expect(statuses.map((s) => s.target)).toEqual(expect.arrayContaining([BOOT_TARGET, expect.stringMatching(/-1\.3\.0\.simg$/)]));
    for (const s of statuses) expect(s).toMatchObject({ state: 'active', counts: { confirmed: 1, failed: 0 } });
  });
});
