/** Boot images for tests: FITs like `signet fit` makes, with a tiny kernel that is only ever verified, never run. */
import { FIT_KEY_NAME } from '../../sdk/disk/fit-key';
import { buildFit } from '../../sdk/fit/fit';
import type { RsaSigner } from '../../sdk/fit/signer';
import { bootReleaseProperties } from '../../sdk/ota/boot-target';

const KiB = 1024;

/** Deterministic filler bytes (xorshift32). */
export function filler(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 255;
  }
  return out;
}

/** A boot image signed by `signer` (a key set's fit.key), with signed release fields unless release is false. */
export function testBootFit(o: { version: string; counter: number; signer: RsaSigner; board?: string; arch?: 'arm64' | 'arm'; release?: boolean }): Uint8Array {
  return buildFit({
    description: `test boot image ${o.version}`,
    arch: o.arch ?? 'arm64',
    timestamp: 1_700_000_000,
    kernel: { data: filler(16 * KiB, o.counter * 7 + o.version.length), loadAddress: 0x40400000, entryAddress: 0x40400000 },
    ramdisk: { data: filler(KiB, 3) },
    fdt: { data: filler(512, 5) },
    keyName: FIT_KEY_NAME,
    signer: o.signer,
    rootProperties: o.release === false ? [] : bootReleaseProperties({ board: o.board ?? 'qemu-virt-arm64', version: o.version, securityCounter: o.counter }),
  });
}
