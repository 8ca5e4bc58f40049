import { describe, expect, it, beforeAll } from 'vitest';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { pureJsCrypto } from '../sdk/image/crypto-purejs';
import { ImageError, IMAGE_ERROR_CODES } from '../sdk/image/errors';
import { decodeHeader, decodeLayout, encodeHeader, HEADER_FIELDS, HEADER_SIZE, MAX_PAYLOAD_SIZE } from '../sdk/image/format';
import { decodeManifest, encodeManifest } from '../sdk/image/manifest';
import { verifyImage, type VerifyOptions } from '../sdk/image/verify';
import { addSignature } from '../sdk/image/create';
import { utf8Encode } from '../sdk/util/bytes';
import { makeImage, makeKeySet, manifestFields, type TestKeySet } from './helpers/fixtures';

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof ImageError) return e.code;
    throw e;
  }
  return 'OK';
}

let ks: TestKeySet;
let good: Uint8Array;
const opts = (over: Partial<VerifyOptions> = {}): VerifyOptions => ({ root: ks.root, board: 'qemu-virt-arm64', crypto: nodeCrypto, now: 1_800_000_000, ...over });

beforeAll(async () => {
  ks = await makeKeySet(1, 1);
  good = await makeImage({ signers: [ks.targets[0].signer] });
});

describe('header field table', () => {
  it('adds up to the header size and round-trips', () => {
    expect(HEADER_FIELDS.reduce((n, f) => n + f.size, 0)).toBe(HEADER_SIZE);
    const h = { formatVersion: 1, headerSize: 32, flags: 0, manifestSize: 1234, payloadSize: 0xdeadbe };
    expect(decodeHeader(encodeHeader(h))).toEqual(h);
  });
  it('is little-endian at the documented offsets', () => {
    const b = encodeHeader({ formatVersion: 1, headerSize: 32, flags: 0, manifestSize: 0x01020304, payloadSize: 0x0a0b0c0d });
    expect([...b.subarray(0, 4)]).toEqual([0x53, 0x49, 0x4d, 0x47]);
    expect([...b.subarray(12, 16)]).toEqual([4, 3, 2, 1]);
    expect([...b.subarray(16, 20)]).toEqual([0x0d, 0x0c, 0x0b, 0x0a]);
  });
});

describe('image round trip', () => {
  it('verifies and returns the manifest and payloads', async () => {
    const app = utf8Encode('print("x")');
    const asset = new Uint8Array([1, 2, 3, 4, 5]);
    const img = await makeImage({ app, assets: [{ name: 'assets/logo.bin', type: 'asset', data: asset }], signers: [ks.targets[0].signer] });
    const v = verifyImage(img, opts());
    expect(v.manifest.version).toBe('1.2.0');
    expect(v.payloads.map((p) => p.name)).toEqual(['app.js', 'assets/logo.bin']);
    expect([...v.payloads[1].bytes]).toEqual([...asset]);
    expect(v.signatures).toEqual([{ keyid: ks.targets[0].signer.keyid, status: 'valid' }]);
  });
  it('manifest encode/decode round-trips and rejects non-canonical forms', () => {
    const m = { ...manifestFields(), payloads: [{ name: 'app.js', type: 'app' as const, size: 1, sha256: '0'.repeat(64) }] };
    const bytes = encodeManifest(m);
    expect(decodeManifest(bytes)).toEqual(m);
    const text = new TextDecoder().decode(bytes);
    expect(codeOf(() => decodeManifest(utf8Encode(text.replace('{', '{ '))))).toBe('E_MANIFEST');
    expect(codeOf(() => decodeManifest(utf8Encode(text.replace('"securityCounter":3', '"securityCounter":3.0'))))).toBe('E_MANIFEST');
    expect(codeOf(() => decodeManifest(utf8Encode(text.replace('{"board"', '{"board":"x","board"'))))).toBe('E_MANIFEST');
    expect(codeOf(() => decodeManifest(utf8Encode(text.replace('{"board"', '{"aaa":1,"board"'))))).toBe('E_MANIFEST');
  });
});

describe('verification refuses, with a closed set of codes', () => {
  it('good image verifies with both crypto implementations', () => {
    expect(codeOf(() => verifyImage(good, opts()))).toBe('OK');
    expect(codeOf(() => verifyImage(good, opts({ crypto: pureJsCrypto })))).toBe('OK');
  });
  it('bad magic, truncated, trailing, version', () => {
    const bad = good.slice();
    bad[0] = 0x00;
    expect(codeOf(() => verifyImage(bad, opts()))).toBe('E_MAGIC');
    expect(codeOf(() => verifyImage(good.subarray(0, 20), opts()))).toBe('E_TRUNCATED');
    expect(codeOf(() => verifyImage(good.subarray(0, good.length - 1), opts()))).toBe('E_TRUNCATED');
    const longer = new Uint8Array(good.length + 1);
    longer.set(good);
    expect(codeOf(() => verifyImage(longer, opts()))).toBe('E_TRAILING_DATA');
    const v2 = good.slice();
    v2[4] = 2;
    expect(codeOf(() => verifyImage(v2, opts()))).toBe('E_VERSION');
  });
  it('size caps are enforced from the header, before allocation', () => {
    const big = good.slice();
    new DataView(big.buffer).setUint32(16, MAX_PAYLOAD_SIZE + 1, true);
    expect(codeOf(() => verifyImage(big, opts()))).toBe('E_SIZE_CAP');
    expect(codeOf(() => verifyImage(good, opts({ maxPayloadBytes: 4 })))).toBe('E_SIZE_CAP');
  });
  it('tampered manifest → signature; tampered payload → digest', () => {
    const m = good.slice();
    m[HEADER_SIZE + 10] ^= 1;
    expect(codeOf(() => verifyImage(m, opts()))).toBe('E_SIGNATURE');
    const layout = decodeLayout(good);
    const p = good.slice();
    p[HEADER_SIZE + layout.header.manifestSize + 3] ^= 0x40;
    expect(codeOf(() => verifyImage(p, opts()))).toBe('E_DIGEST');
  });
  it('wrong key, unsigned, wrong board, rollback, expired', async () => {
    const other = await makeKeySet(1, 1);
    const foreign = await makeImage({ signers: [other.targets[0].signer] });
    expect(codeOf(() => verifyImage(foreign, opts()))).toBe('E_UNKNOWN_KEY');
    const unsigned = await makeImage({ signers: [] });
    expect(codeOf(() => verifyImage(unsigned, opts()))).toBe('E_THRESHOLD');
    expect(codeOf(() => verifyImage(good, opts({ board: 'xen-arm32' })))).toBe('E_BOARD');
    expect(codeOf(() => verifyImage(good, opts({ minSecurityCounter: 4 })))).toBe('E_ROLLBACK');
    expect(codeOf(() => verifyImage(good, opts({ minSecurityCounter: 3 })))).toBe('OK');
    const exp = await makeImage({ expires: 1_750_000_000, signers: [ks.targets[0].signer] });
    expect(codeOf(() => verifyImage(exp, opts({ now: 1_750_000_000 })))).toBe('E_EXPIRED');
    expect(codeOf(() => verifyImage(exp, opts({ now: 1_749_999_999 })))).toBe('OK');
    expect(codeOf(() => verifyImage(exp, opts({ now: null })))).toBe('OK'); // no clock: expiry cannot be judged
  });
  it('a root signing key is not a targets key', async () => {
    const img = await makeImage({ signers: [ks.rootKeys[0].signer] });
    expect(codeOf(() => verifyImage(img, opts()))).toBe('E_UNKNOWN_KEY');
  });
  it('every code thrown is in the closed set', () => {
    expect(IMAGE_ERROR_CODES).toContain('E_SIGNATURE');
    expect(new Set(IMAGE_ERROR_CODES).size).toBe(IMAGE_ERROR_CODES.length);
  });
});

describe('k-of-n threshold', () => {
  let ks23: TestKeySet;
  beforeAll(async () => {
    ks23 = await makeKeySet(2, 3);
  });
  const o = (root: TestKeySet['root']): VerifyOptions => ({ root, board: 'qemu-virt-arm64', crypto: nodeCrypto });
  it('1 of 2-of-3 is not enough, 2 and 3 are', async () => {
    const [a, b, c] = ks23.targets.map((k) => k.signer);
    const one = await makeImage({ signers: [a] });
    expect(codeOf(() => verifyImage(one, o(ks23.root)))).toBe('E_THRESHOLD');
    const two = await addSignature(one, b);
    expect(codeOf(() => verifyImage(two, o(ks23.root)))).toBe('OK');
    const three = await addSignature(two, c);
    expect(verifyImage(three, o(ks23.root)).signatures.filter((s) => s.status === 'valid')).toHaveLength(3);
  });
  it('the same key twice counts once, and signing twice is refused', async () => {
    const [a] = ks23.targets.map((k) => k.signer);
    const one = await makeImage({ signers: [a] });
    await expect(addSignature(one, a)).rejects.toMatchObject({ code: 'E_ALREADY_SIGNED' });
    // Forge a duplicate entry by hand: the verifier must not count it twice.
    const layout = decodeLayout(one);
    const { encodeImage } = await import('../sdk/image/format');
    const dup = encodeImage(layout.manifestBytes, layout.payloadBytes, [layout.signatures[0], layout.signatures[0]]);
    const v = codeOf(() => verifyImage(dup, o(ks23.root)));
    expect(v).toBe('E_THRESHOLD');
  });
  it('an unknown key next to one valid key still fails 2-of-3', async () => {
    const other = await makeKeySet(1, 1);
    const img = await makeImage({ signers: [ks23.targets[0].signer, other.targets[0].signer] });
    expect(codeOf(() => verifyImage(img, o(ks23.root)))).toBe('E_THRESHOLD');
  });
  it('one bad signature by a trusted key with too few valid ones reports E_SIGNATURE', async () => {
    const img = await makeImage({ signers: [ks23.targets[0].signer, ks23.targets[1].signer] });
    const layout = decodeLayout(img);
    const bad = img.slice();
    bad[layout.totalSize - 1] ^= 1; // last byte of the last signature
    expect(codeOf(() => verifyImage(bad, o(ks23.root)))).toBe('E_SIGNATURE');
  });
});
