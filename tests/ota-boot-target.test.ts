// Boot images are targets too (issue 13, the Node and server side).
//
// Real parts: the update server on loopback (HTTPS, mutual TLS, SQLite, blob folder) with the FIT
// public key `signet server keys` exports, keys from `keys init`, FITs built by sdk/fit and signed
// with the key set's real fit.key (a tiny kernel: no kernel build, no QEMU), the `signet` CLI for
// publish and rollouts, and simulated devices (real boot stage, real agent) on A/B flash files
// booting through the model of U-Boot's A/B bootcmd.
//
//  1. `signet publish boot.itb`: a target of its own kind and security counter; a FIT by another
//     key, for another board, or without signed release fields is refused in one coded line.
//  2. A combined release (app 1.3.0 + boot 2.0.0): staged in one cycle, trial-booted, confirmed;
//     the server shows the device's boot image (rollout status, dashboard).
//  3. An older boot image (counter below the device's boot floor) is refused before download.
//  4. A tampered boot image on the server is refused before a byte reaches the inactive slot.
//  5. A power cut after every sector write of a boot-slot update: every restart boots a verified
//     boot slot that the boot environment selects.
//  6. The agent's ES5 boot-image check (what runs in the guest) gives sdk/fit's verdicts, on Node
//     and bundled on the real C host with its SHA-256 and mbedTLS rsaVerify; there, the agent's
//     stageBootImage refuses tampered FITs before a byte of the disk changes.
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBlockDevice } from '../bootloader/src/block-file';
import { PartitionDevice } from '../bootloader/src/block';
import { provisionBootEnv, readBootEnv } from '../bootloader/src/bootenv';
import { provisionFlash } from '../bootloader/src/provision';
import { loadBoard } from '../sdk/board';
import { abLayout } from '../sdk/disk/boot-ab';
import { publicKeyDtb } from '../sdk/fit/keydtb';
import { boardLayout } from '../sdk/ota/simulate';
import { FIT_KEY_NAME, loadFitSigner, type FitSigner } from '../sdk/disk/fit-key';
import { ForgeRsaSigner } from '../sdk/fit/rsa';
import type { RsaSigner } from '../sdk/fit/signer';
import { loadSigner } from '../sdk/keys/keyfile';
import type { Identity } from '../sdk/keys/device';
import { bootPowercutSweep } from '../sdk/ota/boot-powercut';
import { BOOT_STATE_FILE, nodeFitCrypto, readBootRelease, verifyBootFit } from '../sdk/ota/boot-target';
import { buildNativeHost } from '../bootloader/native/build';
import { bundleService } from '../sdk/build/bundle';
import { fromHex, utf8Encode } from '../sdk/util/bytes';
import { sdkRoot } from '../sdk/util/paths';
import { SimulatedDevice } from '../sdk/ota/device';
import { AdminClient } from '../sdk/ota/repository-http';
import type { TargetsSigned } from '../sdk/ota/roles';
import { createUpdateServer } from '../update-server/app';
import { listenHttps, type Listening } from '../update-server/http-node';
import { loadFitPublicKeys } from '../update-server/start';
import { SqliteStorage } from '../update-server/storage-sqlite';
import { appSource, SMALL_FLASH_BYTES, SMALL_LAYOUT } from './helpers/boot';
import { filler, testBootFit } from './helpers/boot-fit';
import { expectOneLineError } from './helpers/cli';
import { makeImage } from './helpers/fixtures';
import { call, enroll, makeRepoKeys, publishImage, quickDevices, signetAsync, tempDir, type RepoKeys } from './server-fixture';

const BOARD = 'qemu-virt-arm64';
const KiB = 1024;
/** SMALL_LAYOUT's flash with the A/B boot partitions after it (boot_a where the board's boot is). */
const AB = {
  boot_a: { offset: 0, size: 64 * KiB },
  boot_b: { offset: SMALL_FLASH_BYTES, size: 64 * KiB },
  bootenv: { offset: SMALL_FLASH_BYTES + 64 * KiB, size: 64 * KiB },
};
const FLASH_BYTES = SMALL_FLASH_BYTES + 128 * KiB;

let work: string;
let k: RepoKeys;
let fitSigner: FitSigner;
let storage: SqliteStorage;
let listening: Listening;
let url: string;
let adminId: Identity;
let admin: AdminClient;
const fitKeys = () => loadFitPublicKeys(k.serverKeys);

/** A boot image like `signet fit` makes, with a tiny kernel, signed by the key set's fit.key. */
function bootFit(o: { version: string; counter: number; board?: string; arch?: 'arm64' | 'arm'; signer?: RsaSigner; release?: boolean }): Uint8Array {
  return testBootFit({ ...o, board: o.board ?? BOARD, signer: o.signer ?? fitSigner });
}

function file(name: string, bytes: Uint8Array): string {
  const p = join(work, name);
  writeFileSync(p, bytes);
  return p;
}

const adminArgs = () => ['--server', url, '--admin', join(work, 'ids', 'ops')];

async function targets(): Promise<TargetsSigned> {
  return ((await admin.getTargets()).targets as { signed: TargetsSigned }).signed;
}

function device(id: Identity, bootImage: Uint8Array): SimulatedDevice {
  return SimulatedDevice.provision({
    dir: join(work, 'devices', id.id), id: id.id, board: BOARD, layout: SMALL_LAYOUT,
    rootBytes: new Uint8Array(readFileSync(join(k.keys, 'root.json'))), serverUrl: url,
    tls: { ca: id.caPem, cert: id.certPem, key: id.keyPem },
    factoryImage: factoryApp, flashBytes: FLASH_BYTES, securityFloor: 3,
    bootAb: AB, fitKeys: fitKeys(), bootImage,
  });
}

function bootEnv(d: SimulatedDevice) {
  const dev = new FileBlockDevice(d.flashPath, 512, false);
  try {
    return readBootEnv(new PartitionDevice(dev, AB.bootenv.offset, AB.bootenv.size)).vars;
  } finally {
    dev.close();
  }
}

function padded(fit: Uint8Array): Uint8Array {
  const out = new Uint8Array(AB.boot_a.size).fill(0xff);
  out.set(fit);
  return out;
}

async function rolloutDevices(id: string): Promise<{ id: string; status: string | null; code: string | null; boot: { version: string } | null }[]> {
  return (await admin.json<{ devices: { id: string; status: string | null; code: string | null; boot: { version: string } | null }[] }>('GET', `/api/v1/rollouts/${id}/devices`)).devices;
}

let factoryApp: Uint8Array;
let bootV1: Uint8Array;
let bootV2: Uint8Array;

beforeAll(async () => {
  work = tempDir('signet-boot-target-');
  k = await makeRepoKeys(work);
  fitSigner = await loadFitSigner(k.keys);
  storage = await SqliteStorage.open(join(work, 'data'));
  const sk = (f: string) => readFileSync(join(k.serverKeys, f), 'utf8');
  const app = await createUpdateServer({
    storage,
    rootBytes: new Uint8Array(readFileSync(join(k.serverKeys, 'root.json'))),
    snapshotSigners: [await loadSigner(join(k.serverKeys, 'snapshot.key'))],
    timestampSigners: [await loadSigner(join(k.serverKeys, 'timestamp.key'))],
    fitKeys: fitKeys(),
  });
  listening = await listenHttps(app, { certPem: sk('server.crt'), keyPem: sk('server.key'), caPem: sk('vendor-ca.crt') }, { port: 0 });
  url = listening.url;
  adminId = await enroll(k, work, 'ops', true);
  admin = new AdminClient(url, adminId);
  factoryApp = await makeImage({ version: '1.2.0', securityCounter: 3, app: appSource('svc', true), signers: [k.targets] });
  bootV1 = bootFit({ version: '1.0.0', counter: 1 });
  bootV2 = bootFit({ version: '2.0.0', counter: 2 });
}, 120_000);

afterAll(async () => {
  await listening?.close();
  await storage?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('signet publish boot.itb', () => {
  it('puts the boot image in the repository as a target of its own kind and security counter', async () => {
    expect(readFileSync(join(k.serverKeys, 'fit-pub.dtb')).length).toBeGreaterThan(256); // from `signet server keys`
    await publishImage(k, url, adminId, await makeImage({ version: '1.3.0', securityCounter: 4, app: appSource('svc', true), signers: [k.targets] }), work);
    const r = await signetAsync(['publish', file('boot-2.0.0.itb', bootV2), '--keys', k.keys, ...adminArgs(), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: `${BOARD}/boot-2.0.0.itb`, kind: 'boot', board: BOARD, version: '2.0.0', securityCounter: 2, alreadyPublished: false });
    const t = await targets();
    expect(t.targets[`${BOARD}/boot-2.0.0.itb`].custom).toEqual({ board: BOARD, version: '2.0.0', securityCounter: 2, name: 'boot', kind: 'boot' });
    expect(t.targets[`${BOARD}/test-svc-1.3.0.simg`].custom).toEqual({ board: BOARD, version: '1.3.0', securityCounter: 4, name: 'test-svc' });
  });

  it('refuses a FIT the board\'s FIT key did not sign, one for another board, or one without signed release fields', async () => {
    const before = (await targets()).version;
    const other = ForgeRsaSigner.fromPem(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string);
    const cases: [string, Uint8Array, string][] = [
      ['other-key.itb', bootFit({ version: '2.1.0', counter: 3, signer: other }), 'E_FIT_SIGNATURE_INVALID'],
      ['other-board.itb', bootFit({ version: '2.1.0', counter: 3, board: 'xen-arm32' }), 'E_BOOT_BOARD'],
      ['unknown-board.itb', bootFit({ version: '2.1.0', counter: 3, board: 'no-such-board' }), 'E_BOARD_UNKNOWN'],
      ['no-release.itb', bootFit({ version: '2.1.0', counter: 3, release: false }), 'E_BOOT_RELEASE'],
    ];
    for (const [name, fit, code] of cases) expectOneLineError(await signetAsync(['publish', file(name, fit), '--keys', k.keys, ...adminArgs()]), code);
    // `signet fit` signs the release fields in: version and counter go together (refused before any build).
    expectOneLineError(await signetAsync(['fit', '--board', BOARD, '--keys', k.keys, '--out', join(work, 'x.itb'), '--version', '2.0.0']), 'E_USAGE');
    expectOneLineError(await signetAsync(['disk', join(work, 'none.simg'), '--board', BOARD, '--keys', k.keys, '--out', join(work, 'x.img'), '--boot-security-counter', '2']), 'E_USAGE');
    expect((await targets()).version).toBe(before);
    // The server keeps only boot images its FIT key verifies, whoever uploads them.
    const bad = cases[0][1];
    const sha = (await import('node:crypto')).createHash('sha256').update(bad).digest('hex');
    await expect(admin.uploadBlob(sha, join(work, 'other-key.itb'), bad.length)).rejects.toMatchObject({ code: 'E_BLOB_NOT_IMAGE' });
  });
});

describe('a device with A/B boot slots', () => {
  let d: SimulatedDevice;
  let ids: Identity[];

  beforeAll(() => {
    ids = quickDevices(k, ['tv-ab-1', 'tv-ab-2']);
  });

  it('takes a combined release: app 1.3.0 and boot image 2.0.0 staged in one cycle, trial-booted, confirmed', async () => {
    d = device(ids[0], bootV1);
    const first = await d.boot();
    expect(first).toMatchObject({ slot: 'a', version: '1.2.0', boot: { slot: 'a', release: { version: '1.0.0', securityCounter: 1 } } });
    expect((await d.checkForUpdate()).outcome).toBe('none');
    const created = await signetAsync(['rollout', 'create', '--board', BOARD, '--version', '1.3.0', '--boot-version', '2.0.0', '--percent', '100',
      '--halt-failure-rate', '0.5', ...adminArgs(), '--json']);
    expect(created.code, created.stderr).toBe(0);
    const [appRollout, bootRollout] = JSON.parse(created.stdout) as { id: string; target: string; state: string }[];
    expect(appRollout).toMatchObject({ target: `${BOARD}/test-svc-1.3.0.simg`, state: 'active' });
    expect(bootRollout).toMatchObject({ target: `${BOARD}/boot-2.0.0.itb`, state: 'active' }); // both active: one per kind

    const r = await d.checkForUpdate();
    expect(r).toMatchObject({ outcome: 'staged', slot: 'b', boot: { outcome: 'staged', slot: 'b' } });
    expect(Buffer.from(d.bootSlotBytes('a')).equals(Buffer.from(padded(bootV1)))).toBe(true);
    expect(Buffer.from(d.bootSlotBytes('b')).equals(Buffer.from(padded(bootV2)))).toBe(true);
    expect(bootEnv(d)).toMatchObject({ boot_slot: 'b', bootcount: '0', boot_good: 'a' });

    const trial = await d.boot();
    expect(trial).toMatchObject({ slot: 'b', trial: true, version: '1.3.0', confirmed: true, boot: { slot: 'b', release: { version: '2.0.0' } } });
    expect(bootEnv(d)).toMatchObject({ boot_slot: 'b', bootcount: '0', boot_good: 'b' });
    expect(d.lines).toEqual(expect.arrayContaining([
      'ota[BOOT-STAGED] target=qemu-virt-arm64/boot-2.0.0.itb slot=b version=2.0.0',
      'ota[REPORT] status=booted-trial target=qemu-virt-arm64/boot-2.0.0.itb',
      'boot[BOOT-CONFIRM] slot=b tries=1',
      'ota[REPORT] status=confirmed target=qemu-virt-arm64/boot-2.0.0.itb',
    ]));
    // The next check-in tells the server what runs: app 1.3.0, boot image 2.0.0 in slot b.
    expect((await d.checkForUpdate()).outcome).toBe('none'); // up to date: nothing offered
    expect(await rolloutDevices(bootRollout.id)).toEqual([expect.objectContaining({ id: 'tv-ab-1', status: 'confirmed', boot: { version: '2.0.0', securityCounter: 2, slot: 'b' } })]);
    expect((await admin.json<{ counts: { confirmed: number } }>('GET', `/api/v1/rollouts/${appRollout.id}`)).counts.confirmed).toBe(1);
    const status = await signetAsync(['rollout', 'status', bootRollout.id, ...adminArgs()]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain('boot image 2.0.0');
    expect(status.stdout).toContain('tv-ab-1  app 1.3.0 (slot b)  boot 2.0.0 #2 (slot b)  confirmed');
    const page = await call(url + '/dashboard', { id: adminId, ca: k.ca.certPem });
    expect(page.status).toBe(200);
    expect(page.body.toString()).toMatch(/<tr data-device="tv-ab-1"[\s\S]*?<td class="boot">2\.0\.0 <small>#2 slot b<\/small><\/td><\/tr>/);
  });

  it('refuses an older boot image (below its boot floor) before downloading it, and reports it', async () => {
    // The boot partitions are flashed back to the factory image by cable (boot 1.0.0, counter 1);
    // the agent's boot floor (2, from the confirmed 2.0.0) survives in its state.
    d.shutdown();
    const dev = new FileBlockDevice(d.flashPath, 512);
    try {
      for (const p of [AB.boot_a, AB.boot_b]) new PartitionDevice(dev, p.offset, p.size).write(0, padded(bootV1));
      provisionBootEnv(new PartitionDevice(dev, AB.bootenv.offset, AB.bootenv.size), 'a', 3);
    } finally {
      dev.close();
    }
    expect(JSON.parse(new TextDecoder().decode(d.store.read(BOOT_STATE_FILE)!))).toMatchObject({ floor: 2, pending: null });
    expect((await d.boot()).boot).toMatchObject({ slot: 'a', release: { version: '1.0.0' } });
    const pub = await signetAsync(['publish', file('boot-1.5.0.itb', bootFit({ version: '1.5.0', counter: 1 })), '--keys', k.keys, ...adminArgs()]);
    expect(pub.code, pub.stderr).toBe(0);
    const created = await signetAsync(['rollout', 'create', '--board', BOARD, '--boot-version', '1.5.0', '--percent', '100', '--halt-failure-rate', '0.5', ...adminArgs(), '--json']);
    const rollout = JSON.parse(created.stdout) as { id: string };
    const slotB = d.bootSlotBytes('b');
    const env = bootEnv(d);
    await expect(d.checkForUpdate()).rejects.toMatchObject({ code: 'E_BOOT_ROLLBACK' });
    expect(d.lines).toContain('ota[BOOT-REFUSED] target=qemu-virt-arm64/boot-1.5.0.itb reason=E_BOOT_ROLLBACK');
    expect(d.lines.filter((l) => l.includes('status=downloading target=qemu-virt-arm64/boot-1.5.0.itb'))).toEqual([]);
    expect(Buffer.from(d.bootSlotBytes('b')).equals(Buffer.from(slotB))).toBe(true);
    expect(bootEnv(d)).toEqual(env);
    expect(await rolloutDevices(rollout.id)).toEqual([expect.objectContaining({ id: 'tv-ab-1', status: 'failed', code: 'E_BOOT_ROLLBACK' })]);
    d.shutdown();
  });

  it('refuses a boot image tampered with on the server before a byte reaches the inactive slot', async () => {
    const t = bootFit({ version: '3.0.0', counter: 3 });
    const pub = await signetAsync(['publish', file('boot-3.0.0.itb', t), '--keys', k.keys, ...adminArgs(), '--json']);
    expect(pub.code, pub.stderr).toBe(0);
    const sha = JSON.parse(pub.stdout).sha256 as string;
    const created = await signetAsync(['rollout', 'create', '--board', BOARD, '--boot-version', '3.0.0', '--percent', '100', '--halt-failure-rate', '0.5', ...adminArgs(), '--json']);
    const rollout = JSON.parse(created.stdout) as { id: string };
    // Bytes changed after publish, in the server's own blob folder (same length).
    const blob = join(work, 'data', 'blobs', sha.slice(0, 2), sha);
    const bytes = readFileSync(blob);
    bytes[bytes.length >> 1] ^= 0x40;
    writeFileSync(blob, bytes);
    const d2 = device(ids[1], bootV1);
    expect((await d2.boot()).boot).toMatchObject({ slot: 'a' });
    const slotB = d2.bootSlotBytes('b');
    const env = bootEnv(d2);
    await expect(d2.checkForUpdate()).rejects.toMatchObject({ code: 'E_TARGET_HASH' });
    expect(Buffer.from(d2.bootSlotBytes('b')).equals(Buffer.from(slotB))).toBe(true);
    expect(bootEnv(d2)).toEqual(env);
    expect(await rolloutDevices(rollout.id)).toEqual(expect.arrayContaining([expect.objectContaining({ id: 'tv-ab-2', status: 'failed', code: 'E_TARGET_HASH' })]));
    // Power on again: the factory boot image, verified.
    expect((await d2.boot()).boot).toMatchObject({ slot: 'a', release: { version: '1.0.0' } });
    d2.shutdown();
  });
});

describe('signet device simulate on an A/B disk', () => {
  it('updates the boot image of a device whose flash is a --boot-ab disk layout, through U-Boot\'s A/B bootcmd', async () => {
    // The board's real layout (boot_a at the board's boot partition, boot_b and bootenv after the
    // last partition, app slots and state where the board has them) as `signet disk --boot-ab
    // --boot-version 1.0.0` lays it out, with the small test FIT in both boot slots.
    const board = loadBoard(BOARD);
    const ab = abLayout(board)!;
    const { layout } = boardLayout(board);
    const diskPath = join(work, 'ab-disk.img');
    writeFileSync(diskPath, new Uint8Array(0));
    truncateSync(diskPath, ab.bootenv.offset + ab.bootenv.size);
    const dev = new FileBlockDevice(diskPath, 512);
    try {
      provisionFlash(dev, layout, { slotA: await makeImage({ version: '1.3.0', securityCounter: 4, app: appSource('svc', true), signers: [k.targets] }), securityFloor: 4 });
      for (const p of [ab.boot_a, ab.boot_b]) new PartitionDevice(dev, p.offset, p.size).write(0, padded(bootV1));
      provisionBootEnv(new PartitionDevice(dev, ab.bootenv.offset, ab.bootenv.size), 'a', 3);
    } finally {
      dev.close();
    }
    const keyDtb = file('pub.dtb', publicKeyDtb(fitSigner.publicKey(), FIT_KEY_NAME));
    const id = await enroll(k, work, 'tv-sim');
    // The boot rollout in force is 3.0.0 (tampered on the server above): publish 4.0.0 and roll it out.
    expect((await signetAsync(['publish', file('boot-4.0.0.itb', bootFit({ version: '4.0.0', counter: 4 })), '--keys', k.keys, ...adminArgs()])).code).toBe(0);
    expect((await signetAsync(['rollout', 'create', '--board', BOARD, '--boot-version', '4.0.0', '--percent', '100', '--halt-failure-rate', '0.5', ...adminArgs()])).code).toBe(0);
    const dir = join(work, 'ids', id.id);
    const r = await signetAsync(['device', 'simulate', '--dir', dir, '--board', BOARD, '--root', join(k.keys, 'root.json'), '--server', url,
      '--disk', diskPath, '--key-dtb', keyDtb, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.update).toMatchObject({ outcome: 'none', boot: { outcome: 'staged', slot: 'b' } });
    expect(out.running).toMatchObject({ slot: 'a', version: '1.3.0', confirmed: true, boot: { slot: 'b', version: '4.0.0', securityCounter: 4 } });
    expect(out.lines).toEqual(expect.arrayContaining(['signet-ab: boot_slot=b bootcount=1', 'boot[BOOT-CONFIRM] slot=b tries=1']));
  });
});

describe('power cut during the boot-slot write', () => {
  it('after every sector write of the update, the restart boots a verified boot slot the boot environment selects', () => {
    const r = bootPowercutSweep({ ab: AB, flashBytes: FLASH_BYTES, board: BOARD, keys: fitKeys(), factory: bootV1, update: bootV2 });
    console.log(`boot-slot power cuts: ${r.points} points over ${r.writes} sector writes, ${r.unbootable} unbootable`);
    expect(r.points).toBeGreaterThanOrEqual(10);
    expect(r.unbootable).toBe(0);
    const cuts = r.outcomes.filter((o) => o.cutAfter < r.writes);
    // Until the one arming write, U-Boot boots the untouched running slot.
    for (const o of cuts) expect(o, `cut after ${o.cutAfter}`).toMatchObject({ stage: 'E_POWER_CUT', booted: 'a', selected: 'a', version: '1.0.0', activeIntact: true });
    // Uncut: the trial of the new image.
    expect(r.outcomes[r.outcomes.length - 1]).toMatchObject({ stage: '', booted: 'b', selected: 'b', version: '2.0.0', activeIntact: true });
  });
});

describe('the agent\'s boot-image check (ES5, on the device\'s engine)', () => {
  // One check for Node and the device: sdk/ota/boot-target-fit.ts with node:crypto + BigInt RSA on
  // Node, and bundled for Duktape with the C host's SHA-256 and mbedTLS rsaVerify on the real host
  // binary, both against sdk/fit's verifier (what `signet publish` and U-Boot's model use).
  it('gives sdk/fit\'s verdict on good, tampered, foreign-key, truncated and release-less FITs, on Node and on the C host; rsaVerify fails closed on malformed inputs; on the C host a bad FIT leaves the disk untouched and the good one is staged', async () => {
    const other = ForgeRsaSigner.generate(2048);
    const good = bootFit({ version: '2.0.0', counter: 2 });
    const flip = (b: Uint8Array, at: number) => {
      const c = b.slice();
      c[at] ^= 1;
      return c;
    };
    const find = (b: Uint8Array, s: string) => Buffer.from(b).indexOf(Buffer.from(s));
    const kernelAt = Buffer.from(good).indexOf(Buffer.from(filler(64, 2 * 7 + '2.0.0'.length))); // bootFit's kernel filler
    const fits: Record<string, Uint8Array> = {
      good,
      kernelByte: flip(good, kernelAt + 10),
      versionByte: flip(good, find(good, '2.0.0')),
      foreignKey: bootFit({ version: '2.0.0', counter: 2, signer: other }),
      truncated: good.subarray(0, 1000),
      noRelease: bootFit({ version: '2.0.0', counter: 2, release: false }),
      notFdt: new Uint8Array(4096).fill(0xff),
      arm: bootFit({ version: '3.1.0', counter: 9, arch: 'arm' }),
    };
    const names = Object.keys(fits);
    expect(find(good, '2.0.0')).toBeGreaterThan(0);
    expect(kernelAt).toBeGreaterThan(0);
    const keys = fitKeys();
    const verdict = (f: () => { board: string; version: string; securityCounter: number; arch: string }) => {
      try {
        const r = f();
        return `ok ${r.board} ${r.version} ${r.securityCounter} ${r.arch}`;
      } catch (e) {
        return `refused ${(e as { code?: string }).code}`;
      }
    };
    const reference = names.map((n) => verdict(() => readBootRelease(fits[n]!, keys)));
    const onNode = names.map((n) => verdict(() => verifyBootFit(fits[n]!, keys, nodeFitCrypto)));
    expect(reference.slice(0, 3)).toEqual(['ok qemu-virt-arm64 2.0.0 2 arm64', 'refused E_FIT_HASH_MISMATCH', 'refused E_FIT_SIGNATURE_INVALID']);
    expect(reference[names.indexOf('foreignKey')]).toBe('refused E_FIT_SIGNATURE_INVALID');
    expect(reference[names.indexOf('noRelease')]).toBe('refused E_BOOT_RELEASE');
    // The FDT-level codes of a truncated tree or a non-tree are the walker's own; the verdict is the same.
    const verdictClass = (v: string) => (v.startsWith('refused E_FDT_') ? 'refused E_FDT' : v);
    expect(onNode.map(verdictClass)).toEqual(reference.map(verdictClass));

    // RSA cases for the raw call: a valid signature over a digest, and malformed inputs.
    const pk = keys[0]!.publicKey;
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    const digest = new Uint8Array(32).fill(7);
    const sig = fitSigner.sign(digest);
    const n = hex(pk.modulus), e = hex(pk.exponent), d = hex(digest), s = hex(sig);
    const rsa = [
      { n, e, d, s }, // valid
      { n, e, d: hex(flip(digest, 0)), s }, // another digest
      { n, e, d, s: hex(flip(sig, 255)) }, // altered signature
      { n: n.slice(2), e, d, s }, // 255-byte modulus
      { n, e: '00', d, s }, // exponent 0
      { n, e: '01', d, s }, // exponent 1
      { n, e: '010000', d, s }, // even exponent
      { n, e, d: d.slice(2), s }, // 31-byte digest
      { n, e, d, s: s.slice(2) }, // 255-byte signature
      { n, e, d, s: n }, // signature = modulus (>= n)
      { n, e, d, s: 'ff'.repeat(256) }, // signature > n
      { n: null, e, d, s }, // not a buffer
      { n: '00'.repeat(256), e, d, s }, // zero modulus
    ];
    const want = rsa.map((c) => (c.n !== null && nodeFitCrypto.rsaVerify(fromHex(c.n)!, fromHex(c.e)!, fromHex(c.d)!, fromHex(c.s)!) ? '1' : '0'));
    expect(want).toEqual(['1', ...Array(rsa.length - 1).fill('0')]);

    // The same on the C host (x86-64 build of what goes into the initramfs).
    const host = await buildNativeHost('host');
    const bundle = await bundleService({ projectDir: join(sdkRoot(), 'tests', 'helpers'), entry: 'fit-duk-main.ts', engine: 'duktape-es5', typecheck: false });
    const paths = names.map((name) => file(`dk-${name}.itb`, fits[name]!));
    const input = file('fit-duk.json', utf8Encode(JSON.stringify({ keys: [{ keyName: keys[0]!.keyName, modulus: n, exponent: e }], fits: paths, rsa })));
    const script = file('fit-duk.js', utf8Encode(bundle.code));
    const r = spawnSync(host, [script, input], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.filter((l) => l.startsWith('fit ')).map((l) => verdictClass(l.replace(/^fit \d+ /, '')))).toEqual(reference.map(verdictClass));
    expect(lines.filter((l) => l.startsWith('rsa ')).map((l) => l.split(' ')[2])).toEqual(want);

    // On the device's engine, the agent's stageBootImage refuses each bad FIT before its first
    // write (the disk file is unchanged, byte for byte), and stages the good one.
    const diskPath = join(work, 'dk-disk.img');
    writeFileSync(diskPath, new Uint8Array(FLASH_BYTES).fill(0xff));
    const fdev = new FileBlockDevice(diskPath, 512);
    try {
      fdev.write(AB.boot_a.offset / 512, padded(bootV1));
      provisionBootEnv(new PartitionDevice(fdev, AB.bootenv.offset, AB.bootenv.size), 'a', 3);
    } finally {
      fdev.close();
    }
    const stage = (which: string[]) => {
      const inp = file('fit-stage.json', utf8Encode(JSON.stringify({ keys: [{ keyName: keys[0]!.keyName, modulus: n, exponent: e }], fits: [], rsa: [],
        stage: { disk: diskPath, board: BOARD, ab: AB, fits: which.map((w) => paths[names.indexOf(w)]) } })));
      const out = spawnSync(host, [script, inp], { encoding: 'utf8', timeout: 120_000 });
      expect(out.status, out.stderr).toBe(0);
      return out.stdout.trim().split('\n');
    };
    const before = readFileSync(diskPath);
    const bad = ['kernelByte', 'versionByte', 'foreignKey', 'truncated', 'noRelease'];
    const refused = stage(bad);
    expect(refused.filter((l) => l.startsWith('stage ')).map((l) => verdictClass(l.replace(/^stage \d+ /, ''))))
      .toEqual(bad.map((w) => verdictClass(reference[names.indexOf(w)]!)));
    expect(refused.some((l) => l.startsWith('ota[BOOT-WRITE]'))).toBe(false);
    expect(readFileSync(diskPath).equals(before)).toBe(true);
    const staged = stage(['good']);
    expect(staged).toContain('stage 0 ok b');
    expect(staged.indexOf('ota[BOOT-WRITE] start slot=b bytes=' + good.length)).toBeGreaterThanOrEqual(0);
    expect(staged.some((l) => l.startsWith('ota[BOOT-ARMED] slot=b version=2.0.0'))).toBe(true);
    const after = readFileSync(diskPath);
    expect(after.subarray(AB.boot_b.offset, AB.boot_b.offset + AB.boot_b.size).equals(Buffer.from(padded(good)))).toBe(true);
    expect(after.subarray(AB.boot_a.offset, AB.boot_a.offset + AB.boot_a.size).equals(Buffer.from(padded(bootV1)))).toBe(true);
  }, 300_000);
});
