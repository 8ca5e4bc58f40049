/**
 * verify.native_ratio: throughput of verifyImage on a 32 MB-payload image with native crypto,
 * divided by plain native SHA-256 of the same bytes (the floor any verifier has to pay).
 * verify.purejs_mb_s: the same verification with pure-JS crypto (what an engine without a
 * native hash gets).
 */
import { createHash, randomBytes } from 'node:crypto';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { pureJsCrypto } from '../sdk/image/crypto-purejs';
import { verifyImage } from '../sdk/image/verify';
import { makeImage, makeKeySet } from '../tests/helpers/fixtures';
import { bestOf, type Figures } from './_lib';

export async function run(): Promise<Figures> {
  const MB = 32;
  const ks = await makeKeySet(1, 1);
  const app = new Uint8Array(randomBytes(MB * 1024 * 1024));
  const img = await makeImage({ app, signers: [ks.targets[0].signer] });
  const opts = { root: ks.root, board: 'qemu-virt-arm64', crypto: nodeCrypto, now: null };
  verifyImage(img, opts); // warm up
  const hashMs = bestOf(7, () => createHash('sha256').update(img).digest());
  const verifyMs = bestOf(7, () => verifyImage(img, opts));
  const pureMs = bestOf(2, () => verifyImage(img, { ...opts, crypto: pureJsCrypto }));
  return {
    native_ratio: { value: hashMs / verifyMs, unit: 'ratio' },
    native_mb_s: { value: MB / (verifyMs / 1000), unit: 'MB/s' },
    sha256_mb_s: { value: MB / (hashMs / 1000), unit: 'MB/s' },
    purejs_mb_s: { value: MB / (pureMs / 1000), unit: 'MB/s' },
  };
}
