/**
 * Issue 10, findings 18–23: what an attacker and a second implementer found in the image
 * format, its verifiers and its doc. Each block fails on 4528c86.
 *
 * Real keys, real signatures, real files: the golden vectors in tests/vectors/ (deterministic
 * keys), the CLI bundle, the boot stage bundled to ES5 and run on Duktape in the C host, the
 * TUF client against a real repository on loopback.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBootStage } from '../bootloader/build';
import { buildNativeHost } from '../bootloader/native/build';
import { PartitionDevice } from '../bootloader/src/block';
import { SimFlash } from '../bootloader/src/block-sim';
import { readSlotImage } from '../bootloader/src/stage';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { pureJsCrypto } from '../sdk/image/crypto-purejs';
import { addSignature, createUnsignedImage } from '../sdk/image/create';
import { IMAGE_ERROR_CODES } from '../sdk/image/errors';
import { decodeManifest, MAX_DEPENDENCIES } from '../sdk/image/manifest';
import { verifyImage } from '../sdk/image/verify';
import { TufClient } from '../sdk/ota/client';
import { MemoryMetadataStore } from '../sdk/ota/client-store';
import { NodeFetcher } from '../sdk/ota/fetcher-node';
import { checkThreshold, parseEnvelope, publicKeyObject, verifyTrustedRoot, type RootSigned } from '../sdk/ota/metadata';
import { signEnvelope } from '../sdk/ota/sign';
import { toHex, utf8Decode, utf8Encode } from '../sdk/util/bytes';
import { canonicalBytes } from '../sdk/util/canonical-json';
import { newFlash, smallBoard } from './helpers/boot';
import { expectOneLineError, signet } from './helpers/cli';
import { envelopeBytes, nowSeconds, TestRepo } from './helpers/tuf-repo';
import { RepoServer } from './helpers/tuf-repo-server';
import { seededKey } from './vectors/vectors';

const VEC = join(__dirname, 'vectors');
const BOARD = 'qemu-virt-arm64';
const vec = (f: string) => join(VEC, f);
const verifyCli = (image: string, root: string, more: string[] = []) =>
  signet(['verify', image, '--root', root, '--board', BOARD, '--min-security-counter', '2', ...more]);

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'signet-image-hardening-'));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A root (signed part) listing targets-1's public key under a second key id, 2-of-2. */
function rootWithOneKeyTwice(): { root: RootSigned; altId: string } {
  const t = seededKey('targets-1').signer;
  const alt = { ...publicKeyObject(t.publicKey), keyid_hash_algorithms: ['sha256'] };
  const altId = toHex(nodeCrypto.sha256(canonicalBytes(alt)));
  const root = JSON.parse(utf8Decode(readFileSync(vec('root.json')))!).signed as RootSigned;
  (root.keys as Record<string, unknown>)[altId] = alt;
  root.roles.targets = { keyids: [t.keyid, altId], threshold: 2 };
  return { root, altId };
}

describe('18: one public key never counts twice toward a threshold', () => {
  it('signet verify refuses a 2-of-2 targets threshold met by one key under two key ids', () => {
    const r = verifyCli(vec('one-key-two-ids.simg'), vec('root-one-key-two-ids.json'));
    expect(r.stdout).not.toMatch(/valid signature/);
    expectOneLineError(r, 'E_ROOT');
    expect(r.stderr).toMatch(/listed under two key ids|does not know: "keyid_hash_algorithms"/);
  });

  it('signet verify refuses a role that lists one key id twice ([A, A], threshold 2)', () => {
    expectOneLineError(verifyCli(vec('valid.simg'), vec('root-role-same-keyid-twice.json')), 'E_ROOT');
  });

  it('a root with a private part or extra key fields is refused', () => {
    expectOneLineError(verifyCli(vec('valid.simg'), vec('root-key-private-part.json')), 'E_ROOT');
    expect(() => verifyTrustedRoot(readFileSync(vec('root-one-key-two-ids.json')), nodeCrypto, null)).toThrow(expect.objectContaining({ code: 'E_META_KEY' }));
  });

  it('the image verifier counts distinct public keys even when handed such a root (Node and pure JS)', () => {
    const { root } = rootWithOneKeyTwice();
    for (const crypto of [nodeCrypto, pureJsCrypto]) {
      expect(() => verifyImage(readFileSync(vec('one-key-two-ids.simg')), { root, board: BOARD, crypto, now: null }), crypto.name)
        .toThrow(expect.objectContaining({ code: 'E_THRESHOLD' }));
    }
  });

  it('TUF metadata thresholds count distinct public keys (root, targets, snapshot, timestamp)', async () => {
    const { root, altId } = rootWithOneKeyTwice();
    const t = seededKey('targets-1').signer;
    for (const role of ['root', 'targets', 'snapshot', 'timestamp'] as const) {
      const r: RootSigned = JSON.parse(JSON.stringify(root));
      r.roles[role] = { keyids: [t.keyid, altId], threshold: 2 };
      const env = await signEnvelope({ _type: role, version: 1 }, [t, { ...t, keyid: altId }]);
      expect(() => checkThreshold(env, r, role, nodeCrypto), role).toThrow(expect.objectContaining({ code: 'E_META_THRESHOLD' }));
    }
  });

  describe('the boot stage on Duktape', () => {
    let host: string;
    beforeAll(async () => {
      host = await buildNativeHost('host');
    }, 600_000);

    async function bootWith(rootFile: string, image: string): Promise<string[]> {
      const b = await buildBootStage({ board: smallBoard(), rootJson: readFileSync(vec(rootFile), 'utf8'), testMode: true });
      const bundle = join(work, `boot-${rootFile}.js`);
      writeFileSync(bundle, b.code);
      const disk = join(work, `disk-${rootFile}.img`);
      writeFileSync(disk, newFlash({ slotA: readFileSync(vec(image)), floor: 0 }).bytes);
      const r = spawnSync(host, [bundle, '--disk', disk], { encoding: 'utf8', timeout: 120_000 });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout.trim().split('\n').filter((l) => l.startsWith('boot['));
    }

    it('boots the valid vector under the vectors root (the harness works)', async () => {
      expect((await bootWith('root.json', 'valid.simg'))[0]).toBe('boot[OK] slot=a version=1.2.0');
    }, 120_000);

    it('runs nothing when the root lists one key under two ids, or one key id twice', async () => {
      for (const [rootFile, image] of [['root-one-key-two-ids.json', 'one-key-two-ids.simg'], ['root-role-same-keyid-twice.json', 'valid.simg']]) {
        const lines = await bootWith(rootFile, image);
        expect(lines[0], rootFile).toMatch(/^boot\[RECOVERY\] reason=E_ROOT what=root detail=E_META_/);
        expect(lines.some((l) => l.startsWith('boot[OK]')), rootFile).toBe(false);
      }
    }, 240_000);
  });

  describe('the OTA client', () => {
    it('refuses a root whose 2-of-2 targets role is one key under two ids, before any target', async () => {
      const repo = await TestRepo.create();
      const t = repo.keys.targets[0];
      const alt = { ...t.publicKey, keyid_hash_algorithms: ['sha256'] };
      const altId = toHex(nodeCrypto.sha256(canonicalBytes(alt)));
      (repo.root.keys as Record<string, unknown>)[altId] = alt;
      repo.root.roles.targets = { keyids: [t.signer.keyid, altId], threshold: 2 };
      repo.rootBytes = await envelopeBytes(repo.root, repo.signers('root'));
      repo.files.set('metadata/1.root.json', repo.rootBytes);
      const payload = new Uint8Array(100).fill(7);
      repo.addTarget(payload, { board: BOARD, name: 'svc', version: '1.3.0', securityCounter: 4 });
      await repo.publish({ targetsSigners: [t.signer, { ...t.signer, keyid: altId }] });
      const server = await RepoServer.start(repo);
      try {
        const client = new TufClient({
          fetcher: new NodeFetcher({ stallTimeoutMs: 10_000 }), store: new MemoryMetadataStore(), crypto: nodeCrypto,
          rootBytes: repo.rootBytes, metadataUrl: server.url + '/tuf/metadata/', targetsUrl: server.url + '/tuf/targets/',
          now: () => nowSeconds(),
        });
        let got = 'RESOLVED';
        try {
          await new Promise<void>((resolve, reject) => client.refresh((err) => (err ? reject(err) : resolve())));
        } catch (e) {
          got = (e as { code?: string }).code ?? String(e);
        }
        expect(got).toBe('E_META_KEY');
      } finally {
        await server.close();
      }
    });
  });
});

describe('19: the doc and the code say the same thing', () => {
  const doc = readFileSync(join(__dirname, '..', 'docs', 'image-format.md'), 'utf8');

  it('a bad root does not hide a bad image: structure first, then the root', () => {
    expectOneLineError(verifyCli(vec('bad-magic.simg'), vec('root-signed-by-stranger.json')), 'E_MAGIC');
    expectOneLineError(verifyCli(vec('trailing.simg'), vec('root-spec-2.json')), 'E_TRAILING_DATA');
    expectOneLineError(verifyCli(vec('header-over-slot.simg'), join(work, 'no-such-root.json')), 'E_SIZE_CAP');
  });

  it('root problems are E_ROOT (the doc\'s code), with the underlying reason in the message', () => {
    const r = verifyCli(vec('valid.simg'), vec('root-signed-by-stranger.json'));
    expectOneLineError(r, 'E_ROOT');
    expect(r.stderr).toMatch(/E_META_THRESHOLD/);
    expectOneLineError(verifyCli(vec('valid.simg'), join(work, 'no-such-root.json')), 'E_ROOT');
  });

  it('a file longer than any image gets the format\'s verdict (E_TRAILING_DATA), without reading it', () => {
    const huge = join(work, 'huge.simg');
    copyFileSync(vec('valid.simg'), huge);
    truncateSync(huge, 300 * 1024 * 1024); // sparse
    expectOneLineError(verifyCli(huge, vec('root.json')), 'E_TRAILING_DATA');
    const zeros = join(work, 'zeros.simg');
    writeFileSync(zeros, '');
    truncateSync(zeros, 300 * 1024 * 1024);
    expectOneLineError(verifyCli(zeros, vec('root.json')), 'E_MAGIC');
  });

  it('a header over the slot cap in a short file is E_SIZE_CAP (the cap comes before the length)', () => {
    expectOneLineError(verifyCli(vec('header-over-slot.simg'), vec('root.json')), 'E_SIZE_CAP');
  });

  it('the dependency cap can be reached within the manifest cap', () => {
    const m = decodeManifest(decodeManifestBytes(vec('dependencies-1024.simg')));
    expect(m.dependencies).toHaveLength(MAX_DEPENDENCIES);
    expect(doc).toContain(`≤ ${MAX_DEPENDENCIES} objects`);
  });

  it('the doc lists the closed set of verdicts exactly, and the small-order encodings the code uses', async () => {
    const set = /The closed set of verdicts: ([^.]+)\./.exec(doc.replace(/\s+/g, ' '));
    expect(set).not.toBeNull();
    expect(set![1].replace(/`/g, '').trim().split(' ').sort()).toEqual([...IMAGE_ERROR_CODES].sort());
    const { SMALL_ORDER_ENCODINGS } = await import('../sdk/image/ed25519-rules');
    for (const e of SMALL_ORDER_ENCODINGS) expect(doc).toContain(toHex(Uint8Array.from(e)));
    for (const rule of ['2^40', '^[a-z0-9][a-z0-9-]{0,31}$', '256 characters', 'spec_version', 'consistent_snapshot', 'keyid_hash_algorithms']) {
      expect(doc, rule).toContain(rule);
    }
  });
});

function decodeManifestBytes(path: string): Uint8Array {
  const b = readFileSync(path);
  const m = b.readUInt32LE(12);
  return new Uint8Array(b.subarray(32, 32 + m));
}

describe('20: strict JSON everywhere JSON comes from outside', () => {
  it('a float or an integer above 2^53 in root.json is a coded error, not E_INTERNAL', () => {
    for (const f of ['root-float.json', 'root-big-integer.json']) {
      const r = verifyCli(vec('valid.simg'), vec(f));
      expect(r.stderr, f).not.toMatch(/E_INTERNAL|this is a bug/);
      expectOneLineError(r, 'E_ROOT');
    }
  });

  it('duplicate keys in root.json are refused (JSON.parse would keep the last, other parsers the first)', () => {
    expectOneLineError(verifyCli(vec('valid.simg'), vec('root-duplicate-key.json')), 'E_ROOT');
    expect(() => verifyTrustedRoot(readFileSync(vec('root-duplicate-key.json')), nodeCrypto, null)).toThrow(expect.objectContaining({ code: 'E_META_FORMAT' }));
  });

  it('TUF metadata: duplicate keys, floats and big integers are E_META_FORMAT', () => {
    const good = '{"signatures":[],"signed":{"_type":"timestamp","version":1}}';
    expect(parseEnvelope(utf8Encode(good)).signed).toEqual({ _type: 'timestamp', version: 1 });
    for (const bad of [
      '{"signatures":[],"signed":{"_type":"timestamp","version":1,"version":2}}',
      '{"signatures":[],"signatures":[],"signed":{}}',
      '{"signatures":[],"signed":{"version":1.5}}',
      '{"signatures":[],"signed":{"version":1e3}}',
      '{"signatures":[],"signed":{"version":9007199254740993}}',
    ]) {
      expect(() => parseEnvelope(utf8Encode(bad)), bad).toThrow(expect.objectContaining({ code: 'E_META_FORMAT' }));
    }
  });
});

describe('21: payload names are safe relative paths', () => {
  const t = seededKey('targets-1').signer;
  const fields = {
    name: 'svc', board: BOARD, version: '1.0.0', securityCounter: 1, buildTime: 1_700_000_000,
    sdkVersion: '0.1.0', engine: 'duktape-es5', dependencies: [],
  };
  const app = utf8Encode('1;');

  for (const name of ['..', '../etc/passwd', 'a//b', 'a/', '/abs', 'a/./b', '.', 'a/..', 'a\\b']) {
    it(`refused when building: ${JSON.stringify(name)}`, () => {
      expect(() => createUnsignedImage(fields, [{ name: 'app.js', type: 'app', data: app }, { name, type: 'asset', data: app }], nodeCrypto))
        .toThrow(expect.objectContaining({ code: 'E_MANIFEST' }));
    });
  }

  it('refused when verifying a validly signed image that carries one', () => {
    for (const f of ['name-traversal.simg', 'name-empty-segment.simg', 'name-trailing-slash.simg', 'name-dotdot.simg']) {
      expectOneLineError(verifyCli(vec(f), vec('root.json')), 'E_MANIFEST');
    }
  });

  it('nested names with dots inside segments still work', async () => {
    const img = await addSignature(createUnsignedImage(fields, [
      { name: 'app.js', type: 'app', data: app }, { name: 'assets/v1.2/logo..png', type: 'asset', data: app },
    ], nodeCrypto), t);
    const root = verifyTrustedRoot(readFileSync(vec('root.json')), nodeCrypto, null);
    expect(verifyImage(img, { root, board: BOARD, crypto: nodeCrypto, now: null }).payloads[1].name).toBe('assets/v1.2/logo..png');
  });
});

describe('22: signet verify makes the device\'s decision', () => {
  let big: string;
  beforeAll(async () => {
    // A real, validly signed image with a 9 MiB payload: qemu-virt-arm64's slots hold 8 MiB.
    const t = seededKey('targets-1').signer;
    const img = await addSignature(createUnsignedImage({
      name: 'big', board: BOARD, version: '1.0.0', securityCounter: 3, buildTime: 1_700_000_000,
      sdkVersion: '0.1.0', engine: 'duktape-es5', dependencies: [],
    }, [{ name: 'app.js', type: 'app', data: utf8Encode('1;') }, { name: 'blob.bin', type: 'asset', data: new Uint8Array(9 * 1024 * 1024) }], nodeCrypto), t);
    big = join(work, 'big.simg');
    writeFileSync(big, img);
  });

  it('a 9 MiB payload for an 8 MiB slot fails with E_SIZE_CAP, the code the boot stage gives', () => {
    expectOneLineError(verifyCli(big, vec('root.json')), 'E_SIZE_CAP');
    // The boot stage reading the same image from an 8 MiB slot.
    const flash = new SimFlash(8 * 1024 * 1024, 512, readFileSync(big));
    expect(() => readSlotImage(new PartitionDevice(flash, 0, 8 * 1024 * 1024))).toThrow(expect.objectContaining({ code: 'E_SIZE_CAP' }));
  });

  it('--floor is the device\'s security counter floor; --now its clock (none = no clock)', () => {
    expectOneLineError(signet(['verify', vec('valid.simg'), '--root', vec('root.json'), '--board', BOARD, '--floor', '4']), 'E_ROLLBACK');
    expectOneLineError(signet(['verify', vec('expired.simg'), '--root', vec('root.json'), '--board', BOARD, '--now', '1800000000']), 'E_EXPIRED');
    expect(signet(['verify', vec('expired.simg'), '--root', vec('root.json'), '--board', BOARD, '--now', 'none']).code).toBe(0);
    expect(signet(['verify', vec('expired.simg'), '--root', vec('root.json'), '--board', BOARD, '--now', '1700000050']).code).toBe(0);
    expectOneLineError(signet(['verify', vec('valid.simg'), '--root', vec('root.json'), '--board', BOARD, '--now', 'soon']), 'E_USAGE');
  });

  it('--help says what verify cannot know', () => {
    const r = signet(['verify', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/cannot know the device's own state/);
    expect(r.stdout).toMatch(/--floor/);
  });
});

describe('23: signing twice with one key', () => {
  it('says that this key already signed (E_ALREADY_SIGNED), and changes nothing', () => {
    const img = join(work, 'signed-once.simg');
    copyFileSync(vec('valid.simg'), img);
    const r = signet(['sign', img, '--key', vec('keys/targets-1.key')]);
    expectOneLineError(r, 'E_ALREADY_SIGNED');
    expect(r.stderr).toMatch(/already signed/);
    expect(Buffer.compare(readFileSync(img), readFileSync(vec('valid.simg')))).toBe(0);
  });
});
