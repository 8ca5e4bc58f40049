/**
 * Key ceremonies end to end, as a vendor runs them from the CLI against the real update server
 * (HTTPS + mutual TLS on loopback, a real SQLite file): a 2-of-3 root whose holders keep their
 * keys in separate folders rotates 1 → 2 → 3 → 4; version 3 rotates the targets key (the
 * repository is repaired with `targets resign`, then `publish` works), version 4 rotates the
 * targets key again and the online snapshot/timestamp keys (the running server picks them up
 * from its keys folder on SIGHUP, without a restart; a bad key set is refused and the old stay). Devices running the agent follow, one of them missing version 2;
 * tuf-js follows; the boot stage follows the chain from its compiled root and refuses a forged one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Updater } from 'tuf-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MtlsFetcher } from './helpers/tuf-js-mtls';
import { BootStage } from '../bootloader/src/stage';
import { readRootChain } from '../bootloader/src/rootstore';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { loadIdentity } from '../sdk/keys/device';
import { generateEd25519, loadSigner } from '../sdk/keys/keyfile';
import { verifyTrustedRoot, type RootSigned } from '../sdk/ota/metadata';
import { AdminClient } from '../sdk/ota/repository-http';
import { signEnvelope } from '../sdk/ota/sign';
import { utf8Encode } from '../sdk/util/bytes';
import { canonicalString } from '../sdk/util/canonical-json';
import { newFlash, parts } from './helpers/boot';
import { CLI, expectOneLineError, ROOT, signet, type CliResult } from './helpers/cli';

let work: string;
let server: ChildProcess | null = null;
let url: string;
/** The server's stderr: its JSON event lines (keys-reloaded, keys-reload-refused). */
let serverLog = '';
const at = (p: string) => join(work, p);
const BOARD = 'qemu-virt-arm64';

function ok(args: string[]): CliResult {
  const r = signet(args, { cwd: work });
  if (r.code !== 0) throw new Error(`signet ${args.join(' ')}: ${r.stderr}`);
  return r;
}

async function startServer(keysDir: string): Promise<void> {
  const s = spawn(process.execPath, [CLI, 'server', '--data', at('ota-data'), '--keys', keysDir, '--port', '0', '--json', '--access-log', 'off'], { stdio: ['ignore', 'pipe', 'pipe'] });
  server = s;
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    s.stdout!.on('data', (d) => {
      out += d;
      const m = /"url":"([^"]+)"/.exec(out);
      if (m) resolve(m[1]);
    });
    s.stderr!.on('data', (d) => {
      err += d;
      serverLog += d;
    });
    s.on('exit', (c) => reject(new Error(`server exited ${c}: ${out} ${err}`)));
  });
}

/** SIGHUP the running server and wait for its verdict on the keys now in its folder. */
async function reloadKeys(): Promise<{ event: string; code?: string; snapshot?: string[]; timestamp?: string[] }> {
  const from = serverLog.length;
  server!.kill('SIGHUP');
  for (;;) {
    const line = serverLog.slice(from).split('\n').find((l) => /"event":"keys-reload/.test(l));
    if (line) return JSON.parse(line);
    if (server!.exitCode !== null) throw new Error('server exited: ' + serverLog);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function stopServer(): Promise<void> {
  const s = server;
  server = null;
  if (!s || s.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    s.removeAllListeners('exit');
    s.on('exit', () => resolve());
    s.kill('SIGTERM');
  });
}

const rootOf = (file: string) => JSON.parse(readFileSync(file, 'utf8')).signed as RootSigned;
function simulate(id: string, extra: string[] = []) {
  const r = signet(['device', 'simulate', '--dir', at(`devices/${id}`), '--board', BOARD, '--root', at('root-v1.json'), '--server', url, '--json', ...extra]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { update: { outcome: string }; running: { version: string; confirmed: boolean }; lines: string[] };
}

function publish(image: string, extra: string[] = []) {
  return signet(['publish', at(image), '--server', url, '--keys', at('keys'), '--admin', at('admin'), '--json', ...extra]);
}

function rollout(version: string) {
  ok(['rollout', 'create', '--board', BOARD, '--version', version, '--percent', '100', '--halt-failure-rate', '0.5', '--server', url, '--admin', at('admin')]);
}

/** Each holder signs their own copy of `file`, on "their machine" (their folder); the copies are merged. */
function holdersSign(file: string, holders: string[]): void {
  for (const h of holders) {
    copyFileSync(at(file), at(`holders/${h}/${file}`));
    ok(['root', 'sign', at(`holders/${h}/${file}`), '--key', at(`holders/${h}/root.key`)]);
  }
  copyFileSync(at(`holders/${holders[0]}/${file}`), at(file));
  for (const h of holders.slice(1)) ok(['root', 'sign', at(file), '--merge', at(`holders/${h}/${file}`)]);
}

function tufjs(dir: string): Updater {
  mkdirSync(join(dir, 'meta'), { recursive: true });
  mkdirSync(join(dir, 'targets'), { recursive: true });
  if (!existsSync(join(dir, 'meta', 'root.json'))) copyFileSync(at('root-v1.json'), join(dir, 'meta', 'root.json'));
  return new Updater({
    metadataDir: join(dir, 'meta'), targetDir: join(dir, 'targets'),
    metadataBaseUrl: url + '/tuf/metadata', targetBaseUrl: url + '/tuf/targets',
    fetcher: new MtlsFetcher(loadIdentity(at('devices/tufjs'))),
  });
}

const rootIds = (file: string) => rootOf(file).roles.root.keyids;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'signet-root-rotation-'));
  ok(['keys', 'init', '--dir', at('keys'), '--threshold', '2', '--count', '3']);
  copyFileSync(at('keys/root.json'), at('root-v1.json')); // what devices are built with
  // The three root holders keep their keys apart: none is left in the release keys folder.
  for (const [i, h] of ['a', 'b', 'c'].entries()) {
    mkdirSync(at(`holders/${h}`), { recursive: true });
    renameSync(at(`keys/root-${i + 1}.key`), at(`holders/${h}/root.key`));
  }
  mkdirSync(at('holders/d'), { recursive: true });
  // 1.2.0: the factory image, signed 2-of-3 by the first targets keys.
  const build = (v: string, c: string, keys: string[]) => {
    ok(['build', '--project', join(ROOT, 'examples/hello'), '--version', v, '--security-counter', c, '--key', keys[0], '--out', at(`app-${v}.simg`), '--no-typecheck']);
    for (const k of keys.slice(1)) ok(['sign', at(`app-${v}.simg`), '--key', k]);
  };
  build('1.2.0', '3', [at('keys/targets-1.key'), at('keys/targets-2.key')]);
  build('1.2.5', '3', [at('keys/targets-1.key'), at('keys/targets-3.key')]);
  ok(['server', 'keys', '--keys', at('keys'), '--out', at('server-keys-1')]);
  await startServer(at('server-keys-1'));
  ok(['device', 'enroll', '--admin', '--id', 'admin', '--keys', at('keys'), '--out', at('admin')]);
  for (const id of ['tv-1', 'tv-2', 'tufjs']) ok(['device', 'enroll', '--id', id, '--board', BOARD, '--keys', at('keys'), '--out', at(`devices/${id}`)]);
  for (const id of ['tv-1', 'tv-2']) expect(simulate(id, ['--factory', at('app-1.2.0.simg')]).running.version).toBe('1.2.0');
}, 300_000);

afterAll(async () => {
  await stopServer();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('root rotation 1 → 2: a 2-of-3 root signed offline by holders in separate folders', () => {
  it('signatures are collected one holder at a time; `root verify` says who signed and who is missing', () => {
    ok(['keys', 'new', '--role', 'root', '--out', at('holders/d/root.key')]);
    const [, , c] = rootIds(at('keys/root.json'));
    ok(['root', 'new', '--from', at('keys/root.json'), '--add-key', 'root=' + at('holders/d/root.pub'), '--remove-key', 'root=' + c.slice(0, 12), '--out', at('root.v2.json')]);
    const v2 = rootOf(at('root.v2.json'));
    expect(v2.version).toBe(2);
    expect(v2.roles.root.keyids).toHaveLength(3);
    expect(v2.roles.root.keyids).not.toContain(c);
    expect(v2.keys[c]).toBeUndefined();

    copyFileSync(at('root.v2.json'), at('holders/a/root.v2.json'));
    ok(['root', 'sign', at('holders/a/root.v2.json'), '--key', at('holders/a/root.key')]);
    const partial = signet(['root', 'verify', at('holders/a/root.v2.json'), '--trusted', at('keys/root.json')]);
    expectOneLineError(partial, 'E_ROOT_UNSIGNED');
    const [a, b] = rootIds(at('keys/root.json'));
    expect(partial.stdout).toContain(`old root (v1) needs 2 of 3: signed by ${a.slice(0, 16)}; missing 1 more from ${b.slice(0, 16)}, ${c.slice(0, 16)}`);
    const d = rootIds(at('root.v2.json'))[2];
    expect(partial.stdout).toContain(`new root (v2) needs 2 of 3: signed by ${a.slice(0, 16)}; missing 1 more from ${b.slice(0, 16)}, ${d.slice(0, 16)}`);
    const j = JSON.parse(signet(['root', 'verify', at('holders/a/root.v2.json'), '--trusted', at('keys/root.json'), '--json']).stdout);
    expect(j).toMatchObject({ version: 2, trustedVersion: 1, ok: false, old: { signed: [a], missing: [b, c] }, new: { signed: [a], missing: [b, d] } });

    // An unsigned-enough root is not pushed: the server still ends its chain at version 1.
    const before = readFileSync(at('keys/root.json'));
    expectOneLineError(signet(['root', 'push', at('holders/a/root.v2.json'), '--server', url, '--admin', at('admin'), '--keys', at('keys')]), 'E_META_THRESHOLD');
    expect(readFileSync(at('keys/root.json')).equals(before)).toBe(true);
    expect(existsSync(at('keys/1.root.json'))).toBe(false);
  });

  it('signatures over different bytes are refused, not merged; a non-root key cannot sign', async () => {
    const aCopy = at('holders/a/root.v2.json');
    const aBefore = readFileSync(aCopy);
    // Holder c drafts their own v2 (another lifetime): other bytes.
    ok(['root', 'new', '--from', at('keys/root.json'), '--expires-days', '30', '--out', at('holders/c/root.v2.json')]);
    ok(['root', 'sign', at('holders/c/root.v2.json'), '--key', at('holders/c/root.key')]);
    expectOneLineError(signet(['root', 'sign', aCopy, '--merge', at('holders/c/root.v2.json')]), 'E_ROOT_MISMATCH');
    expect(readFileSync(aCopy).equals(aBefore)).toBe(true);
    // A signed copy edited afterwards: its signature is over other bytes.
    const edited = JSON.parse(aBefore.toString('utf8'));
    edited.signed.expires = '2099-01-01T00:00:00Z';
    writeFileSync(at('holders/b/edited.json'), JSON.stringify(edited, null, 2));
    const editedBefore = readFileSync(at('holders/b/edited.json'));
    expectOneLineError(signet(['root', 'sign', at('holders/b/edited.json'), '--key', at('holders/b/root.key')]), 'E_ROOT_SIGNATURE');
    expectOneLineError(signet(['root', 'sign', at('root.v2.json'), '--merge', at('holders/b/edited.json')]), 'E_ROOT_MISMATCH');
    expect(readFileSync(at('holders/b/edited.json')).equals(editedBefore)).toBe(true);
    // A targets key is not a root key.
    const v2Before = readFileSync(at('root.v2.json'));
    expectOneLineError(signet(['root', 'sign', at('root.v2.json'), '--key', at('keys/targets-1.key')]), 'E_ROOT_KEY_UNKNOWN');
    expect(readFileSync(at('root.v2.json')).equals(v2Before)).toBe(true);
    // Holder c is only in the old root: with --trusted their key may sign (it counts for the old threshold).
    copyFileSync(at('root.v2.json'), at('holders/c/mine.json'));
    expectOneLineError(signet(['root', 'sign', at('holders/c/mine.json'), '--key', at('holders/c/root.key')]), 'E_ROOT_KEY_UNKNOWN');
    ok(['root', 'sign', at('holders/c/mine.json'), '--key', at('holders/c/root.key'), '--trusted', at('keys/root.json')]);
    const rep = JSON.parse(signet(['root', 'verify', at('holders/c/mine.json'), '--trusted', at('keys/root.json'), '--json']).stdout);
    expect(rep.old.signed).toEqual([rootIds(at('keys/root.json'))[2]]);
    expect(rep.new.signed).toEqual([]);
  });

  it('signed 2-of-3 from separate folders, verified, pushed: the server serves it as 2.root.json', async () => {
    holdersSign('root.v2.json', ['a', 'b', 'd']);
    const v = signet(['root', 'verify', at('root.v2.json'), '--trusted', at('keys/root.json')]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toContain('ok: devices trusting version 1 will accept it');
    const p = ok(['root', 'push', at('root.v2.json'), '--server', url, '--admin', at('admin'), '--keys', at('keys')]);
    expect(p.stdout).toContain('the server now serves root version 2 (kept the previous root as 1.root.json)');
    const served = await new AdminClient(url, loadIdentity(at('admin'))).rootFile(2);
    expect(Buffer.from(served).equals(readFileSync(at('root.v2.json')))).toBe(true);
    expect(readFileSync(at('keys/root.json')).equals(readFileSync(at('root.v2.json')))).toBe(true);
    expect(readFileSync(at('keys/1.root.json')).equals(readFileSync(at('root-v1.json')))).toBe(true);
    // Pushing it again is refused (version 2 does not follow 2), and changes nothing.
    expectOneLineError(signet(['root', 'push', at('root.v2.json'), '--server', url, '--admin', at('admin')]), 'E_META_VERSION');
  });

  it('the agent follows: tv-1 walks to root 2 on its next update', () => {
    const pub = publish('app-1.2.5.simg');
    expect(pub.code, pub.stderr).toBe(0);
    rollout('1.2.5');
    const r = simulate('tv-1');
    expect(r.update.outcome).toBe('staged');
    expect(r.lines).toContain('ota[TUF] root=2');
    expect(r.running).toMatchObject({ version: '1.2.5', confirmed: true });
  });
});

describe('root 2 → 3 rotates the targets key; the repository is repaired', () => {
  it('after the rotation the server\'s targets are the old key\'s: tuf-js refuses them until `targets resign`', async () => {
    ok(['keys', 'new', '--role', 'targets', '--out', at('keys/targets-4.key')]);
    const t = rootOf(at('keys/root.json')).roles.targets.keyids;
    ok(['root', 'new', '--from', at('keys/root.json'), '--add-key', 'targets=' + at('keys/targets-4.pub'),
      ...t.flatMap((id) => ['--remove-key', 'targets=' + id]), '--threshold', 'targets=1', '--out', at('root.v3.json')]);
    holdersSign('root.v3.json', ['b', 'd']);
    ok(['root', 'verify', at('root.v3.json'), '--trusted', at('keys/root.json')]);
    ok(['root', 'push', at('root.v3.json'), '--server', url, '--admin', at('admin'), '--keys', at('keys')]);

    const broken = await tufjs(at('tufjs-1')).refresh().then(() => null, (e: Error) => e);
    expect(broken?.message).toMatch(/targets/i);

    const r = signet(['targets', 'resign', '--keys', at('keys'), '--server', url, '--admin', at('admin'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ signedUnderRoot: 2, rootVersion: 3, signatures: 1 });
    expect(j.targets.map((x: { name: string }) => x.name)).toEqual([`${BOARD}/hello-1.2.5.simg`]);
    // tuf-js, starting from root 1, walks 1 → 2 → 3 and accepts the re-signed targets.
    const u = tufjs(at('tufjs-1'));
    await u.refresh();
    expect(JSON.parse(readFileSync(at('tufjs-1/meta/root.json'), 'utf8')).signed.version).toBe(3);
    const info = await u.getTargetInfo(`${BOARD}/hello-1.2.5.simg`);
    expect(info).toBeDefined();
    const path = await u.downloadTarget(info!, at('tufjs-1/targets/hello-1.2.5.simg'));
    expect(readFileSync(path).equals(readFileSync(at('app-1.2.5.simg')))).toBe(true);
  });

  it('a release signed with the new targets key publishes, and tv-2, which missed root 2, walks 1 → 2 → 3 to install it', () => {
    ok(['build', '--project', join(ROOT, 'examples/hello'), '--version', '1.3.0', '--security-counter', '4', '--key', at('keys/targets-4.key'), '--out', at('app-1.3.0.simg'), '--no-typecheck']);
    const pub = publish('app-1.3.0.simg');
    expect(pub.code, pub.stderr).toBe(0);
    rollout('1.3.0');
    const r = simulate('tv-2');
    expect(r.update.outcome).toBe('staged');
    expect(r.lines).toEqual(expect.arrayContaining(['ota[TUF] root=2', 'ota[TUF] root=3', 'ota[ROOT] installed version=3', 'boot[ROOT] version=3']));
    expect(r.running).toMatchObject({ version: '1.3.0', confirmed: true });
    const r1 = simulate('tv-1');
    expect(r1.lines).toContain('ota[TUF] root=3');
    expect(r1.running).toMatchObject({ version: '1.3.0', confirmed: true });
  });
});

describe('root 3 → 4 rotates the targets key and the online keys; publish needs no repair', () => {
  it('the running server takes the next online keys on SIGHUP (a bad set is refused, the old stay); publish with the new targets key works at once', async () => {
    ok(['keys', 'new', '--role', 'targets', '--out', at('keys/targets-5.key')]);
    ok(['keys', 'new', '--role', 'snapshot', '--out', at('keys/snapshot-2.key')]);
    ok(['keys', 'new', '--role', 'timestamp', '--out', at('keys/timestamp-2.key')]);
    const cur = rootOf(at('keys/root.json')).roles;
    ok(['root', 'new', '--from', at('keys/root.json'),
      '--add-key', 'targets=' + at('keys/targets-5.pub'), '--remove-key', 'targets=' + cur.targets.keyids[0],
      '--add-key', 'snapshot=' + at('keys/snapshot-2.pub'), '--remove-key', 'snapshot=' + cur.snapshot.keyids[0],
      '--add-key', 'timestamp=' + at('keys/timestamp-2.pub'), '--remove-key', 'timestamp=' + cur.timestamp.keyids[0],
      '--out', at('root.v4.json')]);
    holdersSign('root.v4.json', ['a', 'd']);
    // The running server holds only the old online keys: it refuses a root it could not sign under.
    expectOneLineError(signet(['root', 'push', at('root.v4.json'), '--server', url, '--admin', at('admin')]), 'E_REPO_ONLINE_KEY');
    // `signet server keys` copies the next online keys too; they go into the running server's
    // folder and a SIGHUP loads them, no restart.
    ok(['server', 'keys', '--keys', at('keys'), '--out', at('server-keys-2')]);
    expect(existsSync(at('server-keys-2/snapshot-2.key'))).toBe(true);
    const live = at('server-keys-1');
    // A bad set first: timestamp.key replaced by a key root 3 does not name → refused, old keys stay.
    renameSync(join(live, 'timestamp.key'), at('timestamp-1.key.saved'));
    ok(['keys', 'new', '--role', 'timestamp', '--out', join(live, 'timestamp.key')]);
    expect(await reloadKeys()).toMatchObject({ event: 'keys-reload-refused', code: 'E_REPO_ONLINE_KEY' });
    // An offline key in the folder is refused as at start.
    rmSync(join(live, 'timestamp.key'));
    rmSync(join(live, 'timestamp.pub'));
    renameSync(at('timestamp-1.key.saved'), join(live, 'timestamp.key'));
    copyFileSync(at('keys/targets-5.key'), join(live, 'targets-5.key'));
    expect(await reloadKeys()).toMatchObject({ event: 'keys-reload-refused', code: 'E_SERVER_OFFLINE_KEYS' });
    rmSync(join(live, 'targets-5.key'));
    // Still the old keys: the push is refused, nothing changed.
    expectOneLineError(signet(['root', 'push', at('root.v4.json'), '--server', url, '--admin', at('admin')]), 'E_REPO_ONLINE_KEY');
    for (const f of ['snapshot-2.key', 'timestamp-2.key']) copyFileSync(at('server-keys-2/' + f), join(live, f));
    const loaded = await reloadKeys();
    expect(loaded).toMatchObject({ event: 'keys-reloaded' });
    expect(loaded.timestamp).toHaveLength(2);
    ok(['root', 'push', at('root.v4.json'), '--server', url, '--admin', at('admin'), '--keys', at('keys')]);

    ok(['build', '--project', join(ROOT, 'examples/hello'), '--version', '1.4.0', '--security-counter', '5', '--key', at('keys/targets-5.key'), '--out', at('app-1.4.0.simg'), '--no-typecheck']);
    // The server's targets were signed by targets-4 under root 3. Without root 3 kept beside
    // root.json the publisher cannot tell them from a server's own: refused, nothing sent.
    mkdirSync(at('keys-no-history'));
    for (const f of ['root.json', 'targets-5.key']) copyFileSync(at('keys/' + f), at('keys-no-history/' + f));
    expectOneLineError(signet(['publish', at('app-1.4.0.simg'), '--server', url, '--keys', at('keys-no-history'), '--admin', at('admin')]), 'E_META_THRESHOLD');
    // With keys/3.root.json (kept by `root push --keys`) they check out against root 3's targets key.
    const pub = publish('app-1.4.0.simg');
    expect(pub.code, pub.stderr).toBe(0);
    rollout('1.4.0');
    const r = simulate('tv-2');
    expect(r.lines).toContain('ota[TUF] root=4');
    expect(r.running).toMatchObject({ version: '1.4.0', confirmed: true });

    const u = tufjs(at('tufjs-1'));
    await u.refresh();
    expect(JSON.parse(readFileSync(at('tufjs-1/meta/root.json'), 'utf8')).signed.version).toBe(4);
    const ts = JSON.parse(readFileSync(at('tufjs-1/meta/timestamp.json'), 'utf8'));
    expect(ts.signatures.map((s: { keyid: string }) => s.keyid)).toEqual(rootOf(at('keys/root.json')).roles.timestamp.keyids);
    expect(await u.getTargetInfo(`${BOARD}/hello-1.4.0.simg`)).toBeDefined();
  });
});

describe('after a stolen targets key: targets resign --remove drops releases the vendor did not build', () => {
  it('an unknown name is refused and nothing is published; a named release is dropped and clients no longer see it', async () => {
    const admin = new AdminClient(url, loadIdentity(at('admin')));
    const before = ((await admin.getTargets()).targets as { signed: { version: number } }).signed.version;
    const bad = signet(['targets', 'resign', '--keys', at('keys'), '--server', url, '--admin', at('admin'), '--remove', `${BOARD}/nope-1.0.0.simg`]);
    expectOneLineError(bad, 'E_REPO_TARGET_MISSING');
    expect(((await admin.getTargets()).targets as { signed: { version: number } }).signed.version).toBe(before);

    const r = signet(['targets', 'resign', '--keys', at('keys'), '--server', url, '--admin', at('admin'), '--remove', `${BOARD}/hello-1.2.5.simg`, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ signedUnderRoot: 4, rootVersion: 4, targetsVersion: before + 1, removed: [`${BOARD}/hello-1.2.5.simg`] });
    expect(j.targets.map((t: { name: string }) => t.name)).toEqual([`${BOARD}/hello-1.3.0.simg`, `${BOARD}/hello-1.4.0.simg`]);
    const u = tufjs(at('tufjs-1'));
    await u.refresh();
    expect(await u.getTargetInfo(`${BOARD}/hello-1.2.5.simg`)).toBeUndefined();
    expect(await u.getTargetInfo(`${BOARD}/hello-1.4.0.simg`)).toBeDefined();
  });
});

describe('the boot stage follows the chain from its compiled root', () => {
  it('compiled root 1 + the chain 2, 3, 4 → images signed by the newest targets key boot; a forged chain adds nothing', async () => {
    const v1 = verifyTrustedRoot(readFileSync(at('root-v1.json')), nodeCrypto, null);
    const links = ['root.v2.json', 'root.v3.json', 'root.v4.json'].map((f) => new Uint8Array(readFileSync(at(f))));
    const oldImage = new Uint8Array(readFileSync(at('app-1.2.0.simg')));
    const newImage = new Uint8Array(readFileSync(at('app-1.4.0.simg')));
    const stage = (f: ReturnType<typeof newFlash>, lines: string[]) => {
      const p = parts(f);
      return new BootStage({ slots: { a: p.a, b: p.b }, state: p.state, root: v1, board: BOARD, crypto: nodeCrypto, now: () => null, log: (l) => lines.push(l), trialTries: 3 });
    };
    const f = newFlash({ slotA: oldImage, floor: 3 });
    const lines: string[] = [];
    const st = stage(f, lines);
    expect(st.boot()?.slot).toBe('a');
    expect(() => st.stageImage(newImage)).toThrow(expect.objectContaining({ code: 'E_UNKNOWN_KEY' }));

    // Forged: version 2 re-signed by holder d and an attacker's key, with the attacker's targets key.
    const attacker = generateEd25519();
    const forgedRoot = JSON.parse(JSON.stringify(rootOf(at('root.v2.json')))) as RootSigned;
    forgedRoot.keys[attacker.signer.keyid] = attacker.publicKey;
    forgedRoot.roles.targets = { keyids: [attacker.signer.keyid], threshold: 1 };
    forgedRoot.roles.root = { keyids: [forgedRoot.roles.root.keyids[2], attacker.signer.keyid], threshold: 1 };
    const d = await loadSigner(at('holders/d/root.key'));
    const forged = utf8Encode(canonicalString(await signEnvelope(forgedRoot, [d, attacker.signer])));
    expect(() => st.installRootChain([forged])).toThrow(expect.objectContaining({ code: 'E_META_THRESHOLD' }));
    // Skipping a link is refused too (root 3 is not signed by a threshold of root 1's keys).
    expect(() => st.installRootChain([links[1], links[2]])).toThrow(expect.objectContaining({ code: 'E_META_THRESHOLD' }));
    expect(readRootChain(parts(f).state).links).toHaveLength(0);

    expect(st.installRootChain(links).version).toBe(4);
    expect(st.stageImage(newImage).manifest.version).toBe('1.4.0');
    const l2: string[] = [];
    const c = stage(f, l2).boot();
    expect(l2[0]).toBe('boot[ROOT] version=4');
    expect(c?.image.manifest.version).toBe('1.4.0');
  });
});
