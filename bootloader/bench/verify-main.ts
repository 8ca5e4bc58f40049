/**
 * Device-side benchmark script (bundled to ES5 like the boot stage): verify an app image
 * `iterations` times with the boot stage's crypto (the host's native SHA-256 and ed25519 unless
 * --purejs-hash / --purejs-ed25519 / --purejs-crypto, as in device-main.ts) and print
 * `bootverify ms=<per verification>`, then `bootverify root_ms=<per root verification>`.
 * Args: image root iterations [flags].
 */
import { makePureJsCrypto } from '../../sdk/image/crypto-purejs';
import { verifyImage } from '../../sdk/image/verify';
import { verifyTrustedRoot } from '../../sdk/ota/metadata';
import type { SignetNative } from '../src/native';

declare const signet_native: SignetNative;

function main(): void {
  const n = signet_native;
  const a = n.args;
  let pureHash = false;
  let pureEd = false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '--purejs-hash' || a[i] === '--purejs-crypto') pureHash = true;
    if (a[i] === '--purejs-ed25519' || a[i] === '--purejs-crypto') pureEd = true;
  }
  const image = n.readFile(a[0]);
  const rootBytes = n.readFile(a[1]);
  const crypto = makePureJsCrypto(pureHash ? undefined : n.sha256, pureEd ? undefined : n.ed25519Verify);
  const root = verifyTrustedRoot(rootBytes, crypto, null);
  const iterations = +a[2];
  verifyImage(image, { root, board: 'qemu-virt-arm64', crypto, now: null }); // warm up
  const t0 = n.monotonicMs();
  for (let i = 0; i < iterations; i++) verifyImage(image, { root, board: 'qemu-virt-arm64', crypto, now: null });
  n.print('bootverify ms=' + (n.monotonicMs() - t0) / iterations);
  const t1 = n.monotonicMs();
  for (let i = 0; i < iterations; i++) verifyTrustedRoot(rootBytes, crypto, null);
  n.print('bootverify root_ms=' + (n.monotonicMs() - t1) / iterations);
}

main();
