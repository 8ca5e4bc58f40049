/**
 * Property: a randomly mutated valid image is never accepted, and verification only ever
 * fails with a typed ImageError whose code is in the closed set (never a crash, never a
 * different exception). 2 000 cases here; `npm run bench -- fuzz` runs 1 000 000.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { pureJsCrypto } from '../sdk/image/crypto-purejs';
import { ImageError, IMAGE_ERROR_CODES } from '../sdk/image/errors';
import { verifyImage } from '../sdk/image/verify';
import { makeImage, makeKeySet, type TestKeySet } from './helpers/fixtures';
import { mutate, sameBytes, xorshift } from './helpers/mutate';

const CASES = Number(process.env.SIGNET_FUZZ_CASES ?? 2000);

let ks: TestKeySet;
let ks23: TestKeySet;
let images: Uint8Array[];

beforeAll(async () => {
  ks = await makeKeySet(1, 1);
  ks23 = await makeKeySet(2, 3);
  images = [
    await makeImage({ signers: [ks.targets[0].signer] }),
    await makeImage({ signers: [ks.targets[0].signer], expires: 1_900_000_000, assets: [{ name: 'a.bin', type: 'asset', data: new Uint8Array(300).fill(7) }] }),
  ];
});

function outcome(img: Uint8Array, root: TestKeySet['root'], crypto = nodeCrypto): string {
  try {
    verifyImage(img, { root, board: 'qemu-virt-arm64', crypto, now: 1_800_000_000 });
    return 'ACCEPTED';
  } catch (e) {
    if (e instanceof ImageError && (IMAGE_ERROR_CODES as string[]).includes(e.code)) return e.code;
    return 'CRASH:' + String((e as Error)?.stack ?? e);
  }
}

describe('mutated images', () => {
  it('the unmutated images verify (so the property is not vacuous)', () => {
    for (const img of images) expect(outcome(img, ks.root)).toBe('ACCEPTED');
  });

  it(`${CASES} random mutations: never accepted, only typed errors`, () => {
    const seen = new Map<string, number>();
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 0x7fffffff }), fc.nat(1), (seed, which) => {
        const base = images[which];
        const m = mutate(base, xorshift(seed));
        fc.pre(!sameBytes(m, base));
        const r = outcome(m, ks.root);
        seen.set(r, (seen.get(r) ?? 0) + 1);
        return r !== 'ACCEPTED' && !r.startsWith('CRASH');
      }),
      { numRuns: CASES },
    );
    // The mutations reach several different checks, not only the first one.
    expect(seen.size).toBeGreaterThanOrEqual(5);
  });

  it('pure-JS crypto gives the same verdict as native on mutated images', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 0x7fffffff }), (seed) => {
        const m = mutate(images[0], xorshift(seed));
        return outcome(m, ks.root, pureJsCrypto) === outcome(m, ks.root, nodeCrypto);
      }),
      { numRuns: Math.min(CASES, 300) },
    );
  });

  it('2-of-3: dropping or corrupting any signature of a 2-signature image is refused', async () => {
    const img = await makeImage({ signers: [ks23.targets[0].signer, ks23.targets[2].signer] });
    expect(outcome(img, ks23.root)).toBe('ACCEPTED');
    const rand = xorshift(42);
    for (let i = 0; i < 200; i++) {
      const m = mutate(img, rand);
      if (sameBytes(m, img)) continue;
      const r = outcome(m, ks23.root);
      expect(r).not.toBe('ACCEPTED');
      expect(r.startsWith('CRASH')).toBe(false);
    }
  });
});
