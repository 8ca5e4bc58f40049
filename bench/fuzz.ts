/**
 * fuzz.cases / fuzz.crashes: 1 000 000 random mutations of valid images through verifyImage.
 * A crash is anything other than a typed ImageError from the closed set, or an acceptance of
 * a mutated image. SIGNET_FUZZ_CASES overrides the count.
 */
import { nodeCrypto } from '../sdk/image/crypto-node';
import { ImageError, IMAGE_ERROR_CODES } from '../sdk/image/errors';
import { verifyImage } from '../sdk/image/verify';
import { makeImage, makeKeySet } from '../tests/helpers/fixtures';
import { mutate, sameBytes, xorshift } from '../tests/helpers/mutate';
import type { Figures } from './_lib';

export async function run(): Promise<Figures> {
  const cases = Number(process.env.SIGNET_FUZZ_CASES ?? 1_000_000);
  const ks = await makeKeySet(1, 1);
  const images = [
    await makeImage({ signers: [ks.targets[0].signer] }),
    await makeImage({ signers: [ks.targets[0].signer], expires: 1_900_000_000, assets: [{ name: 'a.bin', type: 'asset', data: new Uint8Array(300).fill(7) }] }),
  ];
  const rand = xorshift(Number(process.env.SIGNET_FUZZ_SEED ?? 20261124));
  const codes = new Map<string, number>();
  let crashes = 0;
  let ran = 0;
  let skipped = 0;
  for (let i = 0; ran < cases; i++) {
    const base = images[i & 1];
    const m = mutate(base, rand);
    if (sameBytes(m, base)) {
      skipped++; // a mutation that changed nothing (e.g. a byte set to its own value) is no case
      continue;
    }
    ran++;
    try {
      verifyImage(m, { root: ks.root, board: 'qemu-virt-arm64', crypto: nodeCrypto, now: 1_800_000_000 });
      crashes++;
      console.error(`accepted a mutated image at case ${i}`);
    } catch (e) {
      if (e instanceof ImageError && (IMAGE_ERROR_CODES as string[]).includes(e.code)) codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
      else {
        crashes++;
        console.error(`crash at case ${i}: ${String((e as Error)?.stack ?? e)}`);
      }
    }
  }
  const figures: Figures = {
    cases: { value: ran, unit: 'count' },
    crashes: { value: crashes, unit: 'count' },
    no_op_mutations_skipped: { value: skipped, unit: 'count' },
  };
  for (const [code, n] of [...codes].sort()) figures[`code_${code}`] = { value: n, unit: 'count' };
  return figures;
}
