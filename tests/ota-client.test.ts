// The TUF client workflow (spec §5) against a real signed repository on loopback: tuf-js, a
// client we did not write, first shows the test repository is TUF as others read it; then our
// client's refresh, persistence, root chain and shape checks.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Updater } from 'tuf-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { generateEd25519 } from '../sdk/keys/keyfile';
import { TufClient, targetPath, type MetadataLimits, type MetadataStore } from '../sdk/ota/client';
import { MemoryMetadataStore } from '../sdk/ota/client-store';
import { DirMetadataStore } from '../sdk/ota/client-store-node';
import { NodeFetcher } from '../sdk/ota/fetcher-node';
import { parseEnvelope } from '../sdk/ota/metadata';
import { checkSnapshotShape, checkTargetsShape, checkTimestampShape } from '../sdk/ota/roles';
import { utf8Decode } from '../sdk/util/bytes';
import { tempDir } from './helpers/boot';
import { DAY, envelopeBytes, nowSeconds, TestRepo } from './helpers/tuf-repo';
import { RepoServer } from './helpers/tuf-repo-server';

const BOARD = 'qemu-virt-arm64';
const custom = (version: string, securityCounter: number) => ({ board: BOARD, name: 'svc', version, securityCounter });

function client(repo: TestRepo, server: RepoServer, store: MetadataStore, o: { now?: () => number | null; limits?: Partial<MetadataLimits> } = {}): TufClient {
  return new TufClient({
    fetcher: new NodeFetcher({ stallTimeoutMs: 10_000 }),
    store,
    crypto: nodeCrypto,
    rootBytes: repo.rootBytes,
    metadataUrl: server.url + '/tuf/metadata/',
    targetsUrl: server.url + '/tuf/targets/',
    now: o.now ?? (() => nowSeconds()),
    limits: o.limits,
  });
}

function refresh(c: TufClient): Promise<void> {
  return new Promise((resolve, reject) => c.refresh((err) => (err ? reject(err) : resolve())));
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code ?? 'NO_CODE:' + String(e);
  }
  return 'RESOLVED';
}

function download(c: TufClient, name: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const info = c.target(name);
    if (!info) return reject(new Error('no target ' + name));
    c.downloadTarget(name, info, (err, b) => (err ? reject(err) : resolve(b as Uint8Array)));
  });
}

function metadataPaths(server: RepoServer): string[] {
  return server.requests.filter((r) => r.path.startsWith('/tuf/metadata/')).map((r) => r.path.slice('/tuf/metadata/'.length));
}

let repo: TestRepo;
let server: RepoServer;
let dir: string;
let name: string;
const payload = new Uint8Array(3000).map((_, i) => (i * 7) & 255);

beforeEach(async () => {
  dir = tempDir('signet-ota-client-');
  repo = await TestRepo.create();
  name = repo.addTarget(payload, custom('1.3.0', 4));
  await repo.publish();
  server = await RepoServer.start(repo);
});

afterEach(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the test repository is TUF as tuf-js reads it', () => {
  function tufJs(): Updater {
    const metadataDir = join(dir, 'tufjs-meta');
    const targetDir = join(dir, 'tufjs-targets');
    mkdirSync(metadataDir, { recursive: true });
    mkdirSync(targetDir, { recursive: true });
    // One Updater per refresh (tuf-js refreshes once per instance); the folder is its memory.
    if (!existsSync(join(metadataDir, 'root.json'))) writeFileSync(join(metadataDir, 'root.json'), repo.rootBytes);
    return new Updater({
      metadataDir, targetDir, metadataBaseUrl: server.url + '/tuf/metadata', targetBaseUrl: server.url + '/tuf/targets',
      config: { fetchRetries: 0 },
    });
  }

  it('tuf-js refreshes it (through a root rotation) and downloads a target by hash', async () => {
    await repo.rotateRoot({ timestamp: [generateEd25519()] });
    await repo.publish();
    const u = tufJs();
    await u.refresh();
    const info = await u.getTargetInfo(name);
    expect(info?.custom).toEqual(custom('1.3.0', 4));
    const path = await u.downloadTarget(info!, join(dir, 'tufjs-targets', 'svc.simg'));
    expect(new Uint8Array(readFileSync(path))).toEqual(payload);
    expect(server.targetRequests().map((r) => r.path)).toEqual(['/tuf/targets/' + repo.targetPath(name)]);
  });

  it('tuf-js refuses a rolled-back timestamp, as ours does', async () => {
    await tufJs().refresh();
    const old = repo.file('metadata/timestamp.json');
    await repo.publish();
    await tufJs().refresh();
    server.behave('/tuf/metadata/timestamp.json', { body: old });
    await expect(tufJs().refresh()).rejects.toThrow(/version/i);
  });
});

describe('refresh', () => {
  it('walks 5.3–5.6, persists every role, and downloads the target checking length and hash', async () => {
    const store = new MemoryMetadataStore();
    const c = client(repo, server, store);
    await refresh(c);
    expect(metadataPaths(server)).toEqual(['2.root.json', 'timestamp.json', '1.snapshot.json', '1.targets.json']);
    expect(store.names()).toEqual(['snapshot.json', 'targets.json', 'timestamp.json', 'tuf-floors.json']);
    expect(await download(c, name)).toEqual(payload);
    expect(c.target('qemu-virt-arm64/other-1.0.0.simg')).toBeNull();
  });

  it('a second refresh with nothing new fetches only the next root and the timestamp', async () => {
    const store = new MemoryMetadataStore();
    await refresh(client(repo, server, store));
    server.requests.length = 0;
    await refresh(client(repo, server, store));
    expect(metadataPaths(server)).toEqual(['2.root.json', 'timestamp.json']);
    // The server's periodic new timestamp naming the same snapshot: still no snapshot download.
    await repo.publishTimestamp();
    server.requests.length = 0;
    await refresh(client(repo, server, store));
    expect(metadataPaths(server)).toEqual(['2.root.json', 'timestamp.json']);
    // A new release: new snapshot and targets.
    const next = repo.addTarget(new Uint8Array([1, 2, 3]), custom('1.4.0', 5));
    await repo.publish();
    server.requests.length = 0;
    const c = client(repo, server, store);
    await refresh(c);
    expect(metadataPaths(server)).toEqual(['2.root.json', 'timestamp.json', '2.snapshot.json', '2.targets.json']);
    expect(c.target(next)?.length).toBe(3);
  });

  it('persists to a folder that survives the client (a reboot)', async () => {
    const store = new DirMetadataStore(join(dir, 'dev-tuf'));
    await refresh(client(repo, server, store));
    await repo.rotateRoot();
    await refresh(client(repo, server, store));
    const again = new DirMetadataStore(join(dir, 'dev-tuf'));
    const root = parseEnvelope(again.read('root.json')!).signed as { version: number };
    expect(root.version).toBe(2);
    expect(client(repo, server, again).root().version).toBe(2);
  });

  it('refuses to trust anything without a clock (E_CLOCK)', async () => {
    expect(await code(refresh(client(repo, server, new MemoryMetadataStore(), { now: () => null })))).toBe('E_CLOCK');
  });

  it('refuses target lookups and downloads before a refresh (E_CLIENT_STATE)', () => {
    const c = client(repo, server, new MemoryMetadataStore());
    expect(() => c.target(name)).toThrow(expect.objectContaining({ code: 'E_CLIENT_STATE' }));
  });
});

describe('5.3 root chain', () => {
  it('follows several rotations, including an expired intermediate root, and persists the last', async () => {
    const store = new MemoryMetadataStore();
    await repo.rotateRoot({ root: [generateEd25519()], expires: nowSeconds() - DAY }); // v2: expired, fine as a link
    await repo.rotateRoot({ targets: [generateEd25519()] }); // v3
    await repo.rotateRoot({ root: [generateEd25519(), generateEd25519()], rootThreshold: 2 }); // v4
    await repo.publish();
    const c = client(repo, server, store);
    await refresh(c);
    expect(c.root().version).toBe(4);
    expect((parseEnvelope(store.read('root.json')!).signed as { version: number }).version).toBe(4);
  });

  it('refuses a final root that has expired (5.3.10, E_META_EXPIRED)', async () => {
    await repo.rotateRoot({ expires: nowSeconds() - 60 });
    expect(await code(refresh(client(repo, server, new MemoryMetadataStore())))).toBe('E_META_EXPIRED');
  });

  it('refuses a new root not signed by the old root keys (5.3.4, E_META_THRESHOLD)', async () => {
    const fresh = [generateEd25519()];
    await repo.rotateRoot({ root: fresh, signers: fresh.map((k) => k.signer) });
    const store = new MemoryMetadataStore();
    expect(await code(refresh(client(repo, server, store)))).toBe('E_META_THRESHOLD');
    expect(store.read('root.json')).toBeNull();
  });

  it('refuses a root whose version does not follow (5.3.5, E_META_VERSION)', async () => {
    await repo.rotateRoot();
    await repo.rotateRoot();
    server.behave('/tuf/metadata/2.root.json', { body: repo.file('metadata/3.root.json') });
    expect(await code(refresh(client(repo, server, new MemoryMetadataStore())))).toBe('E_META_VERSION');
  });

  it('fetches at most maxRootRotations roots per refresh and continues at the next', async () => {
    for (let i = 0; i < 3; i++) await repo.rotateRoot();
    await repo.publish();
    const store = new MemoryMetadataStore();
    const c1 = client(repo, server, store, { limits: { maxRootRotations: 2 } });
    await refresh(c1);
    expect(c1.root().version).toBe(3);
    const c2 = client(repo, server, store, { limits: { maxRootRotations: 2 } });
    await refresh(c2);
    expect(c2.root().version).toBe(4);
  });
});

describe('metadata shapes fail closed', () => {
  const future = '2099-01-01T00:00:00Z';
  it('rejects delegations, hashes without sha256, other roles, bad versions', () => {
    const t = { _type: 'targets', spec_version: '1.0.31', version: 1, expires: future, targets: {} };
    expect(checkTargetsShape(t).version).toBe(1);
    expect(() => checkTargetsShape({ ...t, delegations: { keys: {}, roles: [{ name: 'x' }] } })).toThrow(expect.objectContaining({ code: 'E_META_FORMAT' }));
    const entry = { length: 1, hashes: { sha256: 'ab'.repeat(32) }, custom: custom('1.0.0', 1) };
    expect(checkTargetsShape({ ...t, targets: { 'qemu-virt-arm64/svc-1.0.0.simg': entry } }).version).toBe(1);
    const bad = (e: object) => ({ ...t, targets: { 'qemu-virt-arm64/svc-1.0.0.simg': { ...entry, ...e } } });
    expect(() => checkTargetsShape(bad({ hashes: { sha512: 'ab' } }))).toThrow(expect.objectContaining({ code: 'E_META_FORMAT' }));
    expect(() => checkTargetsShape(bad({ custom: undefined }))).toThrow(expect.objectContaining({ code: 'E_META_FORMAT' }));
    expect(() => checkTargetsShape({ ...t, _type: 'snapshot' })).toThrow(expect.objectContaining({ code: 'E_META_TYPE' }));
    expect(() => checkTargetsShape({ ...t, version: 0 })).toThrow(expect.objectContaining({ code: 'E_META_FORMAT' }));
    expect(() => checkTargetsShape({ ...t, spec_version: '2.0.0' })).toThrow(expect.objectContaining({ code: 'E_META_SPEC' }));
    const s = { _type: 'snapshot', spec_version: '1.0.31', version: 1, expires: future, meta: {} };
    expect(() => checkSnapshotShape(s)).toThrow(expect.objectContaining({ code: 'E_META_FORMAT' }));
    const ts = { _type: 'timestamp', spec_version: '1.0.31', version: 1, expires: future, meta: { 'snapshot.json': { version: 1 }, 'x.json': { version: 1 } } };
    expect(() => checkTimestampShape(ts)).toThrow(expect.objectContaining({ code: 'E_META_FORMAT' }));
  });

  it('a published repository parses with the checks (what the server must write)', () => {
    const ts = checkTimestampShape(parseEnvelope(repo.file('metadata/timestamp.json')).signed);
    expect(ts.meta['snapshot.json'].version).toBe(1);
    expect(utf8Decode(repo.file('metadata/1.targets.json'))).toContain('"securityCounter":4');
  });

  it('target paths put the hash on the basename and refuse unsafe names', async () => {
    expect(targetPath('qemu-virt-arm64/svc-1.3.0.simg', 'ab')).toBe('qemu-virt-arm64/ab.svc-1.3.0.simg');
    expect(targetPath('svc.simg', 'ab')).toBe('ab.svc.simg');
    for (const bad of ['../etc/passwd', '/abs', 'a//b', 'a/./b', 'a b', '']) {
      expect(() => targetPath(bad, 'ab'), bad).toThrow(expect.objectContaining({ code: 'E_TARGET_NAME' }));
    }
    expect(await envelopeBytes({ a: 1 }, [])).toEqual(new TextEncoder().encode('{"signatures":[],"signed":{"a":1}}'));
  });
});
