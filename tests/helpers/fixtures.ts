/** Real keys, real signatures, real images, made in memory for tests. */
import { nodeCrypto } from '../../sdk/image/crypto-node';
import { addSignature, createUnsignedImage, type PayloadInput } from '../../sdk/image/create';
import type { Manifest } from '../../sdk/image/manifest';
import { generateEd25519, type Ed25519KeyPair } from '../../sdk/keys/keyfile';
import { formatUtc, SPEC_VERSION, type RootSigned, type Signer } from '../../sdk/ota/metadata';
import { signEnvelope } from '../../sdk/ota/sign';
import { utf8Encode } from '../../sdk/util/bytes';
import { canonicalString } from '../../sdk/util/canonical-json';

export interface TestKeySet {
  root: RootSigned;
  rootBytes: Uint8Array;
  rootKeys: Ed25519KeyPair[];
  targets: Ed25519KeyPair[];
}

export async function makeKeySet(threshold = 1, count = threshold, expiresInDays = 365): Promise<TestKeySet> {
  const rootKeys = Array.from({ length: count }, () => generateEd25519());
  const targets = Array.from({ length: count }, () => generateEd25519());
  const snap = generateEd25519();
  const ts = generateEd25519();
  const keys: RootSigned['keys'] = {};
  for (const k of [...rootKeys, ...targets, snap, ts]) keys[k.signer.keyid] = k.publicKey;
  const root: RootSigned = {
    _type: 'root',
    spec_version: SPEC_VERSION,
    consistent_snapshot: true,
    version: 1,
    expires: formatUtc(Math.floor(Date.now() / 1000) + expiresInDays * 86400),
    keys,
    roles: {
      root: { keyids: rootKeys.map((k) => k.signer.keyid), threshold },
      targets: { keyids: targets.map((k) => k.signer.keyid), threshold },
      snapshot: { keyids: [snap.signer.keyid], threshold: 1 },
      timestamp: { keyids: [ts.signer.keyid], threshold: 1 },
    },
  };
  const env = await signEnvelope(root, rootKeys.map((k) => k.signer));
  return { root, rootBytes: utf8Encode(canonicalString(env)), rootKeys, targets };
}

export interface ImageSpec {
  board?: string;
  version?: string;
  securityCounter?: number;
  expires?: number;
  buildTime?: number;
  app?: Uint8Array;
  assets?: PayloadInput[];
  signers: Signer[];
}

export function manifestFields(spec: Partial<ImageSpec> = {}): Omit<Manifest, 'payloads'> {
  return {
    name: 'test-svc',
    board: spec.board ?? 'qemu-virt-arm64',
    version: spec.version ?? '1.2.0',
    securityCounter: spec.securityCounter ?? 3,
    buildTime: spec.buildTime ?? 1_700_000_000,
    ...(spec.expires !== undefined ? { expires: spec.expires } : {}),
    sdkVersion: '0.1.0',
    engine: 'duktape-es5',
    dependencies: [
      { name: 'src/main.ts', kind: 'app', bytes: 120 },
      { name: 'signet/runtime/index.ts', kind: 'sdk', bytes: 300 },
    ],
  };
}

export async function makeImage(spec: ImageSpec): Promise<Uint8Array> {
  const app = spec.app ?? utf8Encode('(function(){print("hello from test");})();\n');
  let img = createUnsignedImage(manifestFields(spec), [{ name: 'app.js', type: 'app', data: app }, ...(spec.assets ?? [])], nodeCrypto);
  for (const s of spec.signers) img = await addSignature(img, s);
  return img;
}
