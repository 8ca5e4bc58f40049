/**
 * The golden vectors: deterministic keys (from fixed seeds), root metadata and images, with
 * the verdict each must get. `npx tsx`-free regeneration: `node sdk/cli/signet.mjs` is not
 * needed; run `npm run test:unit -- tests/vectors.test.ts` with SIGNET_WRITE_VECTORS=1.
 *
 * THESE KEYS ARE PUBLIC TEST KEYS. Never trust them on a device.
 */
import { createHash, createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { nodeCrypto } from '../../sdk/image/crypto-node';
import { addSignature, createUnsignedImage } from '../../sdk/image/create';
import { decodeLayout, HEADER_SIZE } from '../../sdk/image/format';
import type { Manifest } from '../../sdk/image/manifest';
import { keyIdOf, publicKeyObject, SPEC_VERSION, type RootSigned, type Signer } from '../../sdk/ota/metadata';
import { signEnvelope } from '../../sdk/ota/sign';
import { utf8Encode } from '../../sdk/util/bytes';

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export interface VectorKey {
  name: string;
  pem: string;
  signer: Signer;
}

export function seededKey(name: string): VectorKey {
  const seed = createHash('sha256').update('signet-test-vector-key:' + name).digest();
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  const publicKey = new Uint8Array(spki.subarray(spki.length - 32));
  const keyid = keyIdOf(publicKeyObject(publicKey), nodeCrypto);
  return {
    name,
    pem: priv.export({ format: 'pem', type: 'pkcs8' }) as string,
    signer: { keyid, publicKey, sign: (m: Uint8Array) => new Uint8Array(sign(null, m, priv)) },
  };
}

export interface VectorCase {
  file: string;
  root: string;
  board: string;
  minSecurityCounter: number;
  now: number | null;
  expect: string; // 'OK' or an error code
  note: string;
}

async function rootFor(rootKeys: VectorKey[], targets: VectorKey[], threshold: number, extra: VectorKey[]): Promise<Uint8Array> {
  const keys: RootSigned['keys'] = {};
  for (const k of [...rootKeys, ...targets, ...extra]) keys[k.signer.keyid] = publicKeyObject(k.signer.publicKey);
  const root: RootSigned = {
    _type: 'root',
    spec_version: SPEC_VERSION,
    consistent_snapshot: true,
    version: 1,
    expires: '2099-01-01T00:00:00Z',
    keys,
    roles: {
      root: { keyids: rootKeys.map((k) => k.signer.keyid), threshold },
      targets: { keyids: targets.map((k) => k.signer.keyid), threshold },
      snapshot: { keyids: [extra[0].signer.keyid], threshold: 1 },
      timestamp: { keyids: [extra[1].signer.keyid], threshold: 1 },
    },
  };
  const env = await signEnvelope(root, rootKeys.map((k) => k.signer));
  return utf8Encode(JSON.stringify(env, null, 2) + '\n');
}

function fields(over: Partial<Manifest> = {}): Omit<Manifest, 'payloads'> {
  return {
    name: 'vector-svc',
    board: 'qemu-virt-arm64',
    version: '1.2.0',
    securityCounter: 3,
    buildTime: 1_700_000_000,
    sdkVersion: '0.1.0',
    engine: 'duktape-es5',
    dependencies: [
      { name: 'src/main.ts', kind: 'app', bytes: 41 },
      { name: 'signet/runtime/index.ts', kind: 'sdk', bytes: 17 },
    ],
    ...over,
  };
}

const APP = utf8Encode('print("hello from a golden vector");\n');

export async function generateVectors(): Promise<{ files: Map<string, Uint8Array>; cases: VectorCase[] }> {
  const files = new Map<string, Uint8Array>();
  const k = (n: string) => seededKey(n);
  const root1 = k('root-1'), targets1 = k('targets-1'), snap = k('snapshot'), ts = k('timestamp');
  const r23 = [k('2of3-root-1'), k('2of3-root-2'), k('2of3-root-3')];
  const t23 = [k('2of3-targets-1'), k('2of3-targets-2'), k('2of3-targets-3')];
  const stranger = k('stranger');
  for (const key of [root1, targets1, snap, ts, ...r23, ...t23, stranger]) files.set(`keys/${key.name}.key`, utf8Encode(key.pem));
  files.set('root.json', await rootFor([root1], [targets1], 1, [snap, ts]));
  files.set('root-2of3.json', await rootFor(r23, t23, 2, [snap, ts]));

  const img = async (over: Partial<Manifest>, signers: Signer[], assets = false) => {
    let b = createUnsignedImage(fields(over), [
      { name: 'app.js', type: 'app', data: APP },
      ...(assets ? [{ name: 'assets/config.bin', type: 'asset' as const, data: new Uint8Array(64).map((_, i) => i) }] : []),
    ], nodeCrypto);
    for (const s of signers) b = await addSignature(b, s);
    return b;
  };
  const valid = await img({}, [targets1.signer]);
  const layout = decodeLayout(valid);
  const flip = (b: Uint8Array, at: number) => { const c = b.slice(); c[at] ^= 0x01; return c; };

  files.set('valid.simg', valid);
  files.set('valid-assets.simg', await img({ expires: 2_000_000_000 }, [targets1.signer], true));
  files.set('valid-2of3.simg', await img({}, [t23[0].signer, t23[2].signer]));
  files.set('threshold-1of3.simg', await img({}, [t23[1].signer]));
  files.set('bad-magic.simg', flip(valid, 0));
  files.set('bad-version.simg', (() => { const c = valid.slice(); c[4] = 2; return c; })());
  files.set('truncated.simg', valid.slice(0, valid.length - 10));
  files.set('trailing.simg', (() => { const c = new Uint8Array(valid.length + 4); c.set(valid); return c; })());
  files.set('manifest-tampered.simg', flip(valid, HEADER_SIZE + 20));
  files.set('payload-tampered.simg', flip(valid, HEADER_SIZE + layout.header.manifestSize + 5));
  files.set('wrong-key.simg', await img({}, [stranger.signer]));
  files.set('unsigned.simg', await img({}, []));
  files.set('wrong-board.simg', await img({ board: 'xen-arm32' }, [targets1.signer]));
  files.set('rollback.simg', await img({ securityCounter: 1 }, [targets1.signer]));
  files.set('expired.simg', await img({ expires: 1_700_000_100 }, [targets1.signer]));

  const c = (file: string, expect: string, note: string, over: Partial<VectorCase> = {}): VectorCase => ({
    file, root: 'root.json', board: 'qemu-virt-arm64', minSecurityCounter: 2, now: 1_800_000_000, expect, note, ...over,
  });
  const cases: VectorCase[] = [
    c('valid.simg', 'OK', 'one app payload, 1-of-1 targets signature'),
    c('valid-assets.simg', 'OK', 'app + asset payload, expires 2033'),
    c('valid-2of3.simg', 'OK', 'two of three targets keys', { root: 'root-2of3.json' }),
    c('valid.simg', 'OK', 'no clock: expiry not judged', { now: null }),
    c('threshold-1of3.simg', 'E_THRESHOLD', 'one of three targets keys, threshold 2', { root: 'root-2of3.json' }),
    c('bad-magic.simg', 'E_MAGIC', 'first byte flipped'),
    c('bad-version.simg', 'E_VERSION', 'format version 2'),
    c('truncated.simg', 'E_TRUNCATED', 'last 10 bytes missing'),
    c('trailing.simg', 'E_TRAILING_DATA', '4 zero bytes appended'),
    c('manifest-tampered.simg', 'E_SIGNATURE', 'one manifest bit flipped'),
    c('payload-tampered.simg', 'E_DIGEST', 'one payload bit flipped'),
    c('wrong-key.simg', 'E_UNKNOWN_KEY', 'signed by a key the root does not list'),
    c('unsigned.simg', 'E_THRESHOLD', 'no signatures'),
    c('wrong-board.simg', 'E_BOARD', 'built for xen-arm32'),
    c('rollback.simg', 'E_ROLLBACK', 'security counter 1, minimum 2'),
    c('expired.simg', 'E_EXPIRED', 'expired in 2023'),
    c('valid.simg', 'E_ROLLBACK', 'counter 3 below a floor of 4', { minSecurityCounter: 4 }),
  ];
  return { files, cases };
}
