/**
 * The golden vectors: deterministic keys (from fixed seeds), root metadata and images, with
 * the verdict each must get — docs/image-format.md §8's decision table as files. Regenerate
 * with `node tests/vectors/generate.mjs` (writes every file and expected.json);
 * tests/vectors.test.ts checks that the committed files are exactly what this makes and runs
 * every case through `signet verify`, both crypto implementations and the boot stage's
 * verifier on Duktape.
 *
 * THESE KEYS ARE PUBLIC TEST KEYS. Never trust them on a device.
 */
import { createHash, createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { nodeCrypto } from '../../sdk/image/crypto-node';
import { addSignature, createUnsignedImage } from '../../sdk/image/create';
import { decodeLayout, encodeImage, HEADER_SIZE } from '../../sdk/image/format';
import type { Manifest } from '../../sdk/image/manifest';
import { keyIdOf, publicKeyObject, SPEC_VERSION, type RootSigned, type Signer } from '../../sdk/ota/metadata';
import { signEnvelope } from '../../sdk/ota/sign';
import { toHex, utf8Encode } from '../../sdk/util/bytes';
import { canonicalBytes, canonicalString } from '../../sdk/util/canonical-json';

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
  /** The slot the image must fit: the board's app slot size (boards/<board>/board.json). */
  slotBytes: number;
  expect: string; // 'OK' or an error code
  note: string;
}

/** qemu-virt-arm64's app slots (boards/qemu-virt-arm64/board.json), as `signet verify` applies them. */
export const VECTOR_SLOT_BYTES = 8 * 1024 * 1024;

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

interface RoleLike { keyids: string[]; threshold: number }

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

  // --- structure: one field at a time, in the order of §5 steps 1–2
  const withHeader = (edit: (c: Uint8Array, dv: DataView) => void, b = valid) => {
    const c = b.slice();
    edit(c, new DataView(c.buffer));
    return c;
  };
  const sigOff = HEADER_SIZE + layout.header.manifestSize + layout.header.payloadSize;
  files.set('short-3-bytes.simg', valid.slice(0, 3));
  files.set('short-header.simg', valid.slice(0, 20));
  files.set('flags-set.simg', withHeader((_, dv) => dv.setUint32(8, 1, true)));
  files.set('reserved-nonzero.simg', withHeader((c) => { c[31] = 1; }));
  files.set('header-size-wrong.simg', withHeader((_, dv) => dv.setUint16(6, 64, true)));
  files.set('manifest-size-zero.simg', withHeader((_, dv) => dv.setUint32(12, 0, true)));
  files.set('manifest-over-cap.simg', withHeader((_, dv) => dv.setUint32(12, 65_537, true)));
  files.set('payload-over-cap.simg', withHeader((_, dv) => dv.setUint32(16, 268_435_457, true)));
  // A header describing a 9 MiB payload, in a file of a few hundred bytes: the slot cap (8 MiB)
  // comes before the length check.
  files.set('header-over-slot.simg', withHeader((_, dv) => dv.setUint32(16, 9 * 1024 * 1024, true)));
  files.set('sig-magic-bad.simg', withHeader((c) => { c[sigOff] ^= 0xff; }));
  files.set('sig-reserved-nonzero.simg', withHeader((c) => { c[sigOff + 6] = 1; }));
  files.set('sig-count-17.simg', withHeader((_, dv) => dv.setUint16(sigOff + 4, 17, true)));
  files.set('sig-count-2-short.simg', withHeader((_, dv) => dv.setUint16(sigOff + 4, 2, true)));
  files.set('trailing-1-byte.simg', (() => { const x = new Uint8Array(valid.length + 1); x.set(valid); return x; })());

  // --- signatures: the same key twice counts once
  const twice = await img({}, [t23[0].signer]);
  const tl = decodeLayout(twice);
  files.set('same-key-twice-2of3.simg', encodeImage(tl.manifestBytes, tl.payloadBytes, [tl.signatures[0], tl.signatures[0]]));

  // --- manifest rules, each in an image validly signed by targets-1 (so step 4 is reached)
  const manifestOf = (over: Record<string, unknown>, payloadOver: Record<string, unknown> = {}) => {
    const m: Record<string, unknown> = { ...fields(), payloads: [{ name: 'app.js', type: 'app', size: APP.length, sha256: toHex(nodeCrypto.sha256(APP)) }] };
    for (const k of Object.keys(over)) m[k] = over[k];
    (m.payloads as Record<string, unknown>[])[0] = { ...(m.payloads as Record<string, unknown>[])[0], ...payloadOver };
    return canonicalString(m);
  };
  const rawImage = async (manifestText: string, payloads: Uint8Array[] = [APP], signers: Signer[] = [targets1.signer]) => {
    const total = payloads.reduce((n, p) => n + p.length, 0);
    const pb = new Uint8Array(total);
    let o = 0;
    for (const p of payloads) { pb.set(p, o); o += p.length; }
    const mb = utf8Encode(manifestText);
    const signed = encodeImage(mb, pb, []).subarray(0, HEADER_SIZE + mb.length);
    const sigs = [];
    for (const s of signers) sigs.push({ keyid: Buffer.from(s.keyid, 'hex') as Uint8Array, signature: await s.sign(signed) });
    return encodeImage(mb, pb, sigs);
  };
  const asset = (name: string) => manifestOf({ payloads: [
    { name: 'app.js', sha256: toHex(nodeCrypto.sha256(APP)), size: APP.length, type: 'app' },
    { name, sha256: toHex(nodeCrypto.sha256(APP)), size: APP.length, type: 'asset' },
  ] });
  const badNames: [string, string][] = [
    ['name-dotdot', '..'], ['name-traversal', '../etc/passwd'], ['name-empty-segment', 'a//b'], ['name-trailing-slash', 'a/'],
    ['name-leading-slash', '/etc/passwd'], ['name-dot-segment', 'a/./b'], ['name-backslash', 'a\\b'],
  ];
  for (const [file, name] of badNames) files.set(`${file}.simg`, await rawImage(asset(name), [APP, APP]));
  files.set('name-nested-ok.simg', await rawImage(asset('assets/img/logo.v2.png'), [APP, APP]));
  const mText = manifestOf({});
  files.set('manifest-duplicate-key.simg', await rawImage(mText.replace('"board":"qemu-virt-arm64"', '"board":"qemu-virt-arm64","board":"xen-arm32"')));
  files.set('manifest-float.simg', await rawImage(mText.replace('"securityCounter":3', '"securityCounter":3.0')));
  files.set('manifest-whitespace.simg', await rawImage(mText.replace('{"board"', '{ "board"')));
  files.set('manifest-unknown-field.simg', await rawImage(manifestOf({ debug: true })));
  files.set('payload-extra-field.simg', await rawImage(manifestOf({}, { mode: 420 })));
  files.set('dependency-extra-field.simg', await rawImage(manifestOf({ dependencies: [{ bytes: 1, kind: 'app', name: 'a', x: 1 }] })));
  files.set('dependency-name-space.simg', await rawImage(manifestOf({ dependencies: [{ bytes: 1, kind: 'app', name: ' a' }] })));
  files.set('string-257.simg', await rawImage(manifestOf({ version: '1.2.0+' + 'a'.repeat(251) })));
  files.set('string-256-ok.simg', await rawImage(manifestOf({ version: '1.2.0+' + 'a'.repeat(250) })));
  files.set('engine-bad.simg', await rawImage(manifestOf({ engine: 'Duktape ES5' })));
  files.set('expires-over-cap.simg', await rawImage(manifestOf({ expires: 2 ** 40 })));
  files.set('expires-before-build.simg', await rawImage(manifestOf({ expires: 1_700_000_000 })));
  const deps = (n: number) => Array.from({ length: n }, (_, i) => ({ bytes: 0, kind: 'app', name: 'm' + i }));
  files.set('dependencies-1024.simg', await rawImage(manifestOf({ dependencies: deps(1024) })));
  files.set('dependencies-1025.simg', await rawImage(manifestOf({ dependencies: deps(1025) })));
  files.set('payload-sizes-mismatch.simg', await rawImage(manifestOf({}), [APP, new Uint8Array(3)]));

  // --- roots: each problem alone, signed by root-1 where a signature can be made
  const keyObj = (key: VectorKey, extra: Record<string, unknown> = {}) => ({ ...publicKeyObject(key.signer.publicKey), ...extra });
  const idOf = (o: unknown) => toHex(nodeCrypto.sha256(canonicalBytes(o)));
  const rootSigned = (over: (r: Record<string, unknown>) => void) => {
    const r: Record<string, unknown> = {
      _type: 'root', consistent_snapshot: true, expires: '2099-01-01T00:00:00Z', spec_version: SPEC_VERSION, version: 1,
      keys: { [root1.signer.keyid]: keyObj(root1), [targets1.signer.keyid]: keyObj(targets1), [snap.signer.keyid]: keyObj(snap), [ts.signer.keyid]: keyObj(ts) },
      roles: {
        root: { keyids: [root1.signer.keyid], threshold: 1 },
        targets: { keyids: [targets1.signer.keyid], threshold: 1 },
        snapshot: { keyids: [snap.signer.keyid], threshold: 1 },
        timestamp: { keyids: [ts.signer.keyid], threshold: 1 },
      },
    };
    over(r);
    return r;
  };
  const signedRoot = async (r: Record<string, unknown>, signers: Signer[] = [root1.signer]) =>
    utf8Encode(JSON.stringify(await signEnvelope(r, signers)) + '\n');
  // One public key under two key ids (the second id hashes an extra field): a 2-of-2 targets
  // threshold that one signer would meet.
  const altObj = keyObj(targets1, { keyid_hash_algorithms: ['sha256'] });
  const altId = idOf(altObj);
  files.set('root-one-key-two-ids.json', await signedRoot(rootSigned((r) => {
    (r.keys as Record<string, unknown>)[altId] = altObj;
    (r.roles as Record<string, RoleLike>).targets = { keyids: [targets1.signer.keyid, altId], threshold: 2 };
  })));
  files.set('one-key-two-ids.simg', await rawImage(mText, [APP], [targets1.signer, { ...targets1.signer, keyid: altId }]));
  files.set('root-role-same-keyid-twice.json', await signedRoot(rootSigned((r) => {
    (r.roles as Record<string, RoleLike>).targets = { keyids: [targets1.signer.keyid, targets1.signer.keyid], threshold: 2 };
  })));
  const privObj = keyObj(targets1, { keyval: { public: toHex(targets1.signer.publicKey), private: '00'.repeat(32) } });
  files.set('root-key-private-part.json', await signedRoot(rootSigned((r) => {
    (r.keys as Record<string, unknown>)[idOf(privObj)] = privObj;
    (r.roles as Record<string, RoleLike>).targets = { keyids: [idOf(privObj)], threshold: 1 };
  })));
  files.set('root-unknown-field.json', await signedRoot(rootSigned((r) => { r.mirrors = []; })));
  files.set('root-spec-2.json', await signedRoot(rootSigned((r) => { r.spec_version = '2.0.0'; })));
  files.set('root-consistent-snapshot-string.json', await signedRoot(rootSigned((r) => { r.consistent_snapshot = 'true'; })));
  files.set('root-threshold-0.json', await signedRoot(rootSigned((r) => { (r.roles as Record<string, RoleLike>).targets.threshold = 0; })));
  files.set('root-signed-by-stranger.json', await signedRoot(rootSigned(() => {}), [stranger.signer]));
  const goodRootText = new TextDecoder().decode(await signedRoot(rootSigned(() => {})));
  files.set('root-float.json', utf8Encode(goodRootText.replace('"version":1', '"version":1.0')));
  files.set('root-big-integer.json', utf8Encode(goodRootText.replace('"version":1', '"version":9007199254740993')));
  files.set('root-duplicate-key.json', utf8Encode(goodRootText.replace('"version":1', '"version":2,"version":1')));
  files.set('root-not-json.json', utf8Encode(goodRootText.slice(0, 40)));

  const c = (file: string, expect: string, note: string, over: Partial<VectorCase> = {}): VectorCase => ({
    file, root: 'root.json', board: 'qemu-virt-arm64', minSecurityCounter: 2, now: 1_800_000_000, slotBytes: VECTOR_SLOT_BYTES, expect, note, ...over,
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
    c('valid.simg', 'E_BOARD', 'verified for another board', { board: 'xen-arm32' }),
    // §5 step 1–2: structure, one rule each
    c('short-3-bytes.simg', 'E_TRUNCATED', 'shorter than the magic'),
    c('short-header.simg', 'E_TRUNCATED', 'good magic, 20 bytes'),
    c('flags-set.simg', 'E_HEADER', 'flags = 1'),
    c('reserved-nonzero.simg', 'E_HEADER', 'header byte 31 = 1'),
    c('header-size-wrong.simg', 'E_HEADER', 'headerSize = 64'),
    c('manifest-size-zero.simg', 'E_HEADER', 'manifestSize = 0'),
    c('manifest-over-cap.simg', 'E_SIZE_CAP', 'manifestSize = 65537, file short: the cap comes before the length'),
    c('payload-over-cap.simg', 'E_SIZE_CAP', 'payloadSize = 256 MiB + 1, file short'),
    c('header-over-slot.simg', 'E_SIZE_CAP', 'payloadSize = 9 MiB for an 8 MiB slot, file short: the slot cap comes before the length'),
    c('sig-magic-bad.simg', 'E_SIG_BLOCK', 'signature block magic flipped'),
    c('sig-reserved-nonzero.simg', 'E_SIG_BLOCK', 'signature block reserved = 1'),
    c('sig-count-17.simg', 'E_SIZE_CAP', 'signature count 17'),
    c('sig-count-2-short.simg', 'E_TRUNCATED', 'count says 2 entries, the file holds 1'),
    c('trailing-1-byte.simg', 'E_TRAILING_DATA', 'one byte after the image'),
    // §5 step 3: signatures
    c('same-key-twice-2of3.simg', 'E_THRESHOLD', 'one key\'s signature entered twice counts once (2-of-3)', { root: 'root-2of3.json' }),
    // §4: manifest rules, each image validly signed
    ...badNames.map(([file, name]) => c(`${file}.simg`, 'E_MANIFEST', `payload name ${JSON.stringify(name)}`)),
    c('name-nested-ok.simg', 'OK', 'payload name assets/img/logo.v2.png'),
    c('manifest-duplicate-key.simg', 'E_MANIFEST', 'manifest names "board" twice'),
    c('manifest-float.simg', 'E_MANIFEST', 'securityCounter 3.0'),
    c('manifest-whitespace.simg', 'E_MANIFEST', 'not canonical: a space'),
    c('manifest-unknown-field.simg', 'E_MANIFEST', 'an unknown top-level field'),
    c('payload-extra-field.simg', 'E_MANIFEST', 'a payload object with an extra field'),
    c('dependency-extra-field.simg', 'E_MANIFEST', 'a dependency object with an extra field'),
    c('dependency-name-space.simg', 'E_MANIFEST', 'a dependency name starting with a space'),
    c('string-257.simg', 'E_MANIFEST', 'a 257-character version string'),
    c('string-256-ok.simg', 'OK', 'a 256-character version string'),
    c('engine-bad.simg', 'E_MANIFEST', 'engine "Duktape ES5"'),
    c('expires-over-cap.simg', 'E_MANIFEST', 'expires = 2^40'),
    c('expires-before-build.simg', 'E_MANIFEST', 'expires = buildTime'),
    c('dependencies-1024.simg', 'OK', '1024 dependencies (the cap) fit the manifest'),
    c('dependencies-1025.simg', 'E_MANIFEST', '1025 dependencies'),
    c('payload-sizes-mismatch.simg', 'E_MANIFEST', 'payload region 3 bytes longer than the sizes add up to'),
    // §6: roots (the image is valid unless noted); after the structure, before the signatures
    c('one-key-two-ids.simg', 'E_ROOT', 'targets 2-of-2 with one public key under two key ids', { root: 'root-one-key-two-ids.json' }),
    c('valid.simg', 'E_ROOT', 'targets role lists one key id twice, threshold 2', { root: 'root-role-same-keyid-twice.json' }),
    c('valid.simg', 'E_ROOT', 'a key object with keyval.private', { root: 'root-key-private-part.json' }),
    c('valid.simg', 'E_ROOT', 'an unknown field in root', { root: 'root-unknown-field.json' }),
    c('valid.simg', 'E_ROOT', 'spec_version 2.0.0', { root: 'root-spec-2.json' }),
    c('valid.simg', 'E_ROOT', 'consistent_snapshot "true" (a string)', { root: 'root-consistent-snapshot-string.json' }),
    c('valid.simg', 'E_ROOT', 'targets threshold 0', { root: 'root-threshold-0.json' }),
    c('valid.simg', 'E_ROOT', 'root signed by a key it does not list', { root: 'root-signed-by-stranger.json' }),
    c('valid.simg', 'E_ROOT', 'version 1.0 (a float)', { root: 'root-float.json' }),
    c('valid.simg', 'E_ROOT', 'version 2^53 + 1', { root: 'root-big-integer.json' }),
    c('valid.simg', 'E_ROOT', '"version" named twice', { root: 'root-duplicate-key.json' }),
    c('valid.simg', 'E_ROOT', 'not JSON', { root: 'root-not-json.json' }),
    c('bad-magic.simg', 'E_MAGIC', 'a bad root does not hide a bad header', { root: 'root-float.json' }),
    c('trailing.simg', 'E_TRAILING_DATA', 'a bad root does not hide a bad length', { root: 'root-duplicate-key.json' }),
    c('manifest-tampered.simg', 'E_ROOT', 'the root is checked before the signatures', { root: 'root-signed-by-stranger.json' }),
  ];
  return { files, cases };
}

/** expected.json: the decision table, one object per case. */
export function expectedJson(cases: VectorCase[]): string {
  return JSON.stringify(cases, null, 2) + '\n';
}
