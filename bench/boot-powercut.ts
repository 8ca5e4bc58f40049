/**
 * boot-powercut.points / boot-powercut.unbootable / boot-powercut.active_slot_damaged: the
 * boot-slot power-cut sweep of tests/ota-boot-target.test.ts (sdk/ota/boot-powercut.ts) on a
 * boot image with a 128 KiB kernel: a cut after every sector write of the update, then a power-on
 * through the A/B bootcmd model. Goal: 0 unbootable, 0 damaged.
 */
import { generateKeyPairSync } from 'node:crypto';
import { buildFit } from '../sdk/fit/fit';
import { ForgeRsaSigner } from '../sdk/fit/rsa';
import { bootPowercutSweep } from '../sdk/ota/boot-powercut';
import { bootReleaseProperties } from '../sdk/ota/boot-target';
import type { Figures } from './_lib';

const KiB = 1024;

export async function run(): Promise<Figures> {
  const signer = ForgeRsaSigner.fromPem(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string);
  const fit = (version: string, counter: number, seed: number) => buildFit({
    description: 'bench boot image ' + version, arch: 'arm64', timestamp: 1_700_000_000,
    kernel: { data: new Uint8Array(128 * KiB).map((_, i) => (i * seed + (i >> 9)) & 255), loadAddress: 0x40400000, entryAddress: 0x40400000 },
    ramdisk: { data: new Uint8Array(4 * KiB).fill(seed) }, fdt: { data: new Uint8Array(512).fill(1) },
    keyName: 'fit', signer, rootProperties: bootReleaseProperties({ board: 'qemu-virt-arm64', version, securityCounter: counter }),
  });
  const ab = { boot_a: { offset: 0, size: 256 * KiB }, boot_b: { offset: 256 * KiB, size: 256 * KiB }, bootenv: { offset: 512 * KiB, size: 64 * KiB } };
  const r = bootPowercutSweep({
    ab, flashBytes: 576 * KiB, board: 'qemu-virt-arm64', keys: [{ keyName: 'fit', publicKey: signer.publicKey() }],
    factory: fit('1.0.0', 1, 3), update: fit('2.0.0', 2, 5),
  });
  return {
    points: { value: r.points, unit: 'count' },
    unbootable: { value: r.unbootable, unit: 'count' },
    active_slot_damaged: { value: r.outcomes.filter((o) => !o.activeIntact).length, unit: 'count' },
  };
}
