import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bundleService } from '../sdk/build/bundle';
import { appSource, SMALL_FLASH_BYTES, SMALL_LAYOUT } from './helpers/boot';
import { buildDuktapeRunner, hasDuktape } from './helpers/duktape';
import { makeImage } from './helpers/fixtures';
import { nowSeconds, TestRepo } from './helpers/tuf-repo';
import { otaWorld, type OtaWorld } from './helpers/tuf-repo-world';
import { TestCa } from './helpers/tuf-repo-tls';

describe('agent: check in, refresh, download, verify, stage, report', () => {
  let w: OtaWorld;
  afterEach(async () => w?.close());

  it('updates 1.2.0 → 1.3.0 through a trial boot and confirm, reporting each step', async () => {
    w = await otaWorld();
    const r = await w.device.checkForUpdate();
    expect(r.outcome).toBe('staged');
    expect(r.slot).toBe('b');
    const b = await w.device.boot();
    expect(b).toMatchObject({ slot: 'b', trial: true, version: '1.3.0', confirmed: true });
    const again = await w.device.boot();
    expect(again).toMatchObject({ slot: 'b', trial: false, version: '1.3.0' });
    expect(w.server.reports.map((x) => x.status)).toEqual(['downloading', 'staged', 'booted-trial', 'confirmed']);
    expect(w.device.state()?.securityFloor).toBe(4);
  });

  it('a release that never confirms falls back after its trial boots and is reported failed (E_TRIAL_EXHAUSTED)', async () => {
    w = await otaWorld();
    const bad = await w.image({ version: '1.3.1', securityCounter: 4, confirm: false });
    w.server.offer = w.repo.offerFor(await w.publishImage(bad, { version: '1.3.1' }));
    expect((await w.device.checkForUpdate()).outcome).toBe('staged');
    for (let i = 0; i < 3; i++) expect(await w.device.boot()).toMatchObject({ slot: 'b', trial: true, confirmed: false });
    expect(await w.device.boot()).toMatchObject({ slot: 'a', trial: false, version: '1.2.0' });
    expect(w.server.reports.map((r) => r.status + (r.code ? ':' + r.code : ''))).toEqual(['downloading', 'staged', 'booted-trial', 'failed:E_TRIAL_EXHAUSTED']);
    expect(w.device.agent.pending()).toBeNull();
    expect(w.device.state()?.securityFloor).toBe(3);
    // The next cycle checks in normally (whether to offer it again is the server's call).
    w.server.offer = null;
    expect((await w.device.checkForUpdate()).outcome).toBe('none');
  });

  it('an app that throws before confirming is a failed trial too', async () => {
    w = await otaWorld();
    const crash = await w.image({ version: '1.3.1', securityCounter: 4, app: new TextEncoder().encode('throw new Error("boom");') });
    w.server.offer = w.repo.offerFor(await w.publishImage(crash, { version: '1.3.1' }));
    await w.device.checkForUpdate();
    for (let i = 0; i < 3; i++) expect(await w.device.boot()).toMatchObject({ slot: 'b', appError: 'E_APP_CRASHED' });
    expect(await w.device.boot()).toMatchObject({ slot: 'a', version: '1.2.0' });
    expect(w.server.reports.at(-1)).toMatchObject({ status: 'failed', code: 'E_TRIAL_EXHAUSTED' });
  });

  it('no offer: nothing but the check-in; the check-in carries board, version, counter and slot', async () => {
    w = await otaWorld();
    w.server.offer = null;
    w.server.requests.length = 0;
    expect(await w.device.checkForUpdate()).toEqual({ outcome: 'none' });
    expect(w.server.requests.map((r) => r.path)).toEqual(['/api/v1/checkin']);
    expect(w.server.checkins.at(-1)).toEqual({ board: 'qemu-virt-arm64', version: '1.2.0', securityCounter: 3, slot: 'a' });
  });

  it('an offer of what already runs changes nothing', async () => {
    w = await otaWorld();
    w.server.offer = w.repo.offerFor(await w.publishImage(w.factory, { version: '1.2.0', securityCounter: 3 }));
    expect((await w.device.checkForUpdate()).outcome).toBe('current');
    expect(w.server.targetRequests()).toEqual([]);
  });

  it('while an install awaits its trial boot, a cycle neither checks in nor stages again', async () => {
    w = await otaWorld();
    await w.device.checkForUpdate();
    const n = w.server.checkins.length;
    expect((await w.device.checkForUpdate()).outcome).toBe('pending');
    expect(w.server.checkins.length).toBe(n);
  });

  it('reports that cannot be delivered are kept, in order, and sent later', async () => {
    w = await otaWorld();
    w.server.behave('/api/v1/report', { status: 503 });
    expect((await w.device.checkForUpdate()).outcome).toBe('staged');
    expect(w.server.reports).toEqual([]);
    expect(w.device.agent.queuedReports().map((r) => r.status)).toEqual(['downloading', 'staged']);
    w.server.normal();
    await w.device.boot();
    expect(w.server.reports.map((r) => r.status)).toEqual(['downloading', 'staged', 'booted-trial', 'confirmed']);
    expect(w.device.agent.queuedReports()).toEqual([]);
  });

  it('a report the server refuses (4xx) is dropped, not retried forever ahead of the others', async () => {
    w = await otaWorld();
    w.server.behave('/api/v1/report', { status: 400, times: 1 });
    expect((await w.device.checkForUpdate()).outcome).toBe('staged');
    expect(w.server.reports.map((r) => r.status)).toEqual(['staged']);
    expect(w.device.agent.queuedReports()).toEqual([]);
    expect(w.device.lines).toContain('ota[REPORT] dropped status=downloading reason=E_FETCH_REFUSED');
  });

  it('resumes a cut download; network trouble beyond that is transient (no failed report), the next cycle installs', async () => {
    w = await otaWorld({ device: { maxResumes: 2 } });
    const path = '/tuf/targets/' + w.repo.targetPath(w.releaseName);
    w.server.behave(path, { cutAfter: 100 }); // three pieces of 100 bytes cannot make the image
    await expect(w.device.checkForUpdate()).rejects.toMatchObject({ code: 'E_FETCH_CUT' });
    expect(w.server.reports.filter((r) => r.status === 'failed')).toEqual([]);
    w.server.behave(path, { cutAfter: 500, times: 1 });
    expect((await w.device.checkForUpdate()).outcome).toBe('staged');
    expect(w.server.targetRequests().at(-1)?.range).toBe('bytes=500-');
  });

  it('a malformed check-in answer is E_API', async () => {
    w = await otaWorld();
    w.server.offer = { target: 42 } as never;
    await expect(w.device.checkForUpdate()).rejects.toMatchObject({ code: 'E_API' });
  });

  it('over mutual TLS: the device presents its certificate on every request', async () => {
    const ca = new TestCa();
    const s = ca.server();
    const dev = ca.client('tv-0001');
    w = await otaWorld({ tls: { key: s.key, cert: s.cert, ca: ca.cert }, device: { tls: { ca: ca.cert, cert: dev.cert, key: dev.key } } });
    expect((await w.device.checkForUpdate()).outcome).toBe('staged');
    expect(new Set(w.server.requests.map((r) => r.clientCn))).toEqual(new Set(['tv-0001']));
  });
});

// ---------------------------------------------------------------------------------------------
// The agent core on the device engine: bundled by the SDK's build pipeline for duktape-es5
// (type check against the engine's lib, no Promise/Map/Set), then a whole update (TUF refresh,
// download, verifyImage, BootStage.stageImage, trial boot, confirm) run on Duktape 2.7 — the
// engine the guest embeds — and on Node, with the same output.

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/** A device program: in-memory flash and fetcher, the real agent and boot stage. */
function deviceMain(): string {
  const p = (rel: string) => JSON.stringify(join(repoRoot, rel));
  return `import { OtaAgent } from ${p('sdk/ota/agent')};
import { MemoryMetadataStore } from ${p('sdk/ota/client-store')};
import { OtaError } from ${p('sdk/ota/errors')};
import type { Fetcher } from ${p('sdk/ota/fetcher')};
import { pureJsCrypto } from ${p('sdk/image/crypto-purejs')};
import { fromHex, utf8Decode, utf8Encode } from ${p('sdk/util/bytes')};
import { PartitionDevice, type BlockDevice } from ${p('bootloader/src/block')};
import { provisionFlash, type FlashLayout } from ${p('bootloader/src/provision')};
import { BootStage, type BootChoice } from ${p('bootloader/src/stage')};

declare const FILES: Record<string, string>;
declare const ROOT: string;
declare const FACTORY: string;
declare const OFFER: string;
declare const NOW: number;
declare const LAYOUT: FlashLayout;
declare const FLASH_BYTES: number;
declare function print(line: string): void;

const BASE = 'http://ota.test';
const BOARD = 'qemu-virt-arm64';

class MemFlash implements BlockDevice {
  readonly sectorSize = 512;
  readonly sectorCount: number;
  readonly bytes: Uint8Array;
  constructor(n: number) {
    this.sectorCount = n / 512;
    this.bytes = new Uint8Array(n);
    for (let i = 0; i < n; i++) this.bytes[i] = 0xff;
  }
  read(s: number, c: number): Uint8Array {
    const o = new Uint8Array(c * 512);
    o.set(this.bytes.subarray(s * 512, (s + c) * 512));
    return o;
  }
  write(s: number, d: Uint8Array): void {
    this.bytes.set(d, s * 512);
  }
  flush(): void {}
}

const fetcher: Fetcher = {
  fetch: function (req, sink) {
    const path = req.url.substring(BASE.length);
    let body: Uint8Array | null = null;
    if (req.method === 'POST') {
      const sent = JSON.parse(utf8Decode(req.body as Uint8Array) as string);
      if (path === '/api/v1/checkin') body = utf8Encode(OFFER);
      else {
        print('report ' + sent.status + (sent.code ? ' ' + sent.code : ''));
        body = utf8Encode('{"ok":true}');
      }
    } else if (path.indexOf('/tuf/') === 0 && Object.prototype.hasOwnProperty.call(FILES, path.substring(5))) {
      body = fromHex(FILES[path.substring(5)]);
    }
    if (!body) {
      sink.end(new OtaError('E_FETCH_NOT_FOUND', path));
      return { abort: function () {} };
    }
    for (let off = req.offset || 0; off < body.length; off += 1000) {
      if (sink.data(body.subarray(off, Math.min(off + 1000, body.length))) === false) break;
    }
    sink.end(null);
    return { abort: function () {} };
  },
};

const flash = new MemFlash(FLASH_BYTES);
provisionFlash(flash, LAYOUT, { slotA: fromHex(FACTORY) as Uint8Array, securityFloor: 3 });
const part = function (x: { offset: number; size: number }) { return new PartitionDevice(flash, x.offset, x.size); };
let stage: BootStage;
let choice: BootChoice;
const agent = new OtaAgent({
  serverUrl: BASE, fetcher: fetcher, store: new MemoryMetadataStore(), crypto: pureJsCrypto,
  rootBytes: fromHex(ROOT) as Uint8Array, now: function () { return NOW; },
  device: function () {
    return { board: BOARD, version: choice.image.manifest.version, securityCounter: choice.image.manifest.securityCounter,
      slot: choice.slot, securityFloor: (stage.currentState() as { securityFloor: number }).securityFloor };
  },
  install: { stageImage: function (b: Uint8Array) { return stage.stageImage(b); } },
  maxImageBytes: LAYOUT.slot_b.size,
  log: print,
});
function bootOnce(): void {
  stage = new BootStage({
    slots: { a: part(LAYOUT.slot_a), b: part(LAYOUT.slot_b) }, state: part(LAYOUT.state), root: agent.trustedRoot(),
    board: BOARD, crypto: pureJsCrypto, now: function () { return NOW; }, log: print, trialTries: 3,
  });
  choice = stage.boot() as BootChoice;
}
bootOnce();
agent.checkForUpdate(function (err, r) {
  print('update ' + (err ? err.code : (r as { outcome: string }).outcome + ' ' + (r as { slot?: string }).slot));
});
bootOnce();
const trial = choice.trial;
agent.afterBoot({ slot: choice.slot, trial: trial, lastError: '' }, function () {});
if (trial) {
  stage.confirm();
  agent.confirmed(function () {});
}
bootOnce();
print('final slot=' + choice.slot + ' version=' + choice.image.manifest.version + ' floor=' + (stage.currentState() as { securityFloor: number }).securityFloor);
`;
}

describe('on the device engine (duktape-es5)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'signet-ota-duk-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('sdk/ota/agent.ts bundles for duktape-es5 with the engine type check, and leaves the Node adapter out', async () => {
    const b = await bundleService({ projectDir: repoRoot, entry: 'sdk/ota/agent.ts', engine: 'duktape-es5' });
    const names = b.modules.map((m) => m.name);
    for (const m of ['signet/ota/agent.ts', 'signet/ota/client.ts', 'signet/ota/client-trusted.ts', 'signet/ota/fetcher.ts', 'signet/image/verify.ts']) {
      expect(names).toContain(m);
    }
    expect(names.filter((n) => /fetcher-node|device|client-store-node|node:/.test(n))).toEqual([]);
    expect(b.code).not.toMatch(/\bPromise\b/);
  });

  it.skipIf(!hasDuktape())('runs an update, and refuses a tampered target, on Duktape 2.7 as on Node', async () => {
    const runner = buildDuktapeRunner(dir);
    const proj = mkdtempSync(join(dir, 'proj-'));
    writeFileSync(join(proj, 'main.ts'), deviceMain());
    const b = await bundleService({ projectDir: proj, entry: 'main.ts', engine: 'duktape-es5', typecheck: false });

    const repo = await TestRepo.create();
    const sign = repo.signers('targets');
    const factory = await makeImage({ version: '1.2.0', securityCounter: 3, app: appSource('svc', true), signers: sign });
    const release = await makeImage({ version: '1.3.0', securityCounter: 4, app: appSource('svc', true), signers: sign });
    const name = repo.addTarget(release, { board: 'qemu-virt-arm64', name: 'svc', version: '1.3.0', securityCounter: 4 });
    await repo.publish();
    const hex = (u: Uint8Array) => Buffer.from(u).toString('hex');
    const prelude = (files: Map<string, Uint8Array>) => {
      const f: Record<string, string> = {};
      for (const [k, v] of files) f[k] = hex(v);
      return `var FILES = ${JSON.stringify(f)}; var ROOT = '${hex(repo.rootBytes)}'; var FACTORY = '${hex(factory)}';
var OFFER = ${JSON.stringify(JSON.stringify({ offer: repo.offerFor(name) }))}; var NOW = ${nowSeconds()};
var LAYOUT = ${JSON.stringify(SMALL_LAYOUT)}; var FLASH_BYTES = ${SMALL_FLASH_BYTES};`;
    };
    const run = (files: Map<string, Uint8Array>) => {
      writeFileSync(join(dir, 'prelude.js'), prelude(files));
      writeFileSync(join(dir, 'main.js'), b.code);
      const d = spawnSync(runner, [join(dir, 'prelude.js'), join(dir, 'main.js')], { encoding: 'utf8' });
      const n = spawnSync(process.execPath, ['-'], { input: 'globalThis.print = (l) => console.log(l);\n' + prelude(files) + '\n' + b.code, encoding: 'utf8' });
      expect(d.stderr).toBe('');
      expect(n.stderr).toBe('');
      expect(d.stdout).toBe(n.stdout);
      return d.stdout;
    };

    const ok = run(repo.files);
    expect(ok).toContain('update staged b\n');
    expect(ok.split('\n').filter((l) => l.startsWith('report '))).toEqual(['report downloading', 'report staged', 'report booted-trial', 'report confirmed']);
    expect(ok).toContain('final slot=b version=1.3.0 floor=4\n');

    const tampered = new Map(repo.files);
    const evil = new Uint8Array(release);
    evil[evil.length - 1] ^= 1;
    tampered.set('targets/' + repo.targetPath(name), evil);
    const bad = run(tampered);
    expect(bad).toContain('update E_TARGET_HASH\n');
    expect(bad).toContain('report failed E_TARGET_HASH\n');
    expect(bad).not.toContain('boot[STAGED]');
    expect(bad).toContain('final slot=a version=1.2.0 floor=3\n');
  });
});

describe('agent: the check-in answer is read strictly', () => {
  it('one reading only: duplicate keys, trailing data and non-JSON are E_API, a plain answer parses', async () => {
    const { parseOffer } = await import('../sdk/ota/agent');
    const enc = (s: string) => new TextEncoder().encode(s);
    const offer = '{"target":"t","version":"1.3.0","securityCounter":4,"length":10,"sha256":"00","rollout":"r"}';
    expect(parseOffer(enc(`{"offer":${offer}}`))).toMatchObject({ version: '1.3.0', securityCounter: 4 });
    expect(parseOffer(enc('{"offer":null}'))).toBeNull();
    // JSON.parse takes the last of two keys; a strict reader refuses the answer.
    for (const bad of [`{"offer":null,"offer":${offer}}`, `{"offer":${offer.replace('"version":"1.3.0"', '"version":"1.0.0","version":"1.3.0"')}}`, '{"offer":null} x', 'offer']) {
      expect(() => parseOffer(enc(bad)), bad).toThrow(expect.objectContaining({ code: 'E_API' }));
    }
  });
});
