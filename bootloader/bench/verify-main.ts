/**
 * Device-side benchmark script (bundled to ES5 like the boot stage): verify an app image
 * `iterations` times with the boot stage's crypto (native SHA-256 from the host unless
 * --purejs-hash) and print `bootverify ms=<per verification>`. Args: image root iterations.
 */
import { makePureJsCrypto } from '../../sdk/image/crypto-purejs';
import { verifyImage } from '../../sdk/image/verify';
import { verifyTrustedRoot } from '../../sdk/ota/metadata';
import type { SignetNative } from '../src/native';

declare const signet_native: SignetNative;

function main(): void {
  const n = signet_native;
  const a = n.args;
  let purejs = false;
  for (let i = 0; i < a.length; i++) if (a[i] === '--purejs-hash') purejs = true;
  const image = n.readFile(a[0]);
  const crypto = makePureJsCrypto(purejs ? undefined : n.sha256);
  const root = verifyTrustedRoot(n.readFile(a[1]), crypto, null);
  const iterations = +a[2];
  verifyImage(image, { root, board: 'qemu-virt-arm64', crypto, now: null }); // warm up
  const t0 = n.monotonicMs();
  for (let i = 0; i < iterations; i++) verifyImage(image, { root, board: 'qemu-virt-arm64', crypto, now: null });
  n.print('bootverify ms=' + (n.monotonicMs() - t0) / iterations);
}

main();
