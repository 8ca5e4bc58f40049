/**
 * powercut.cut_points / powercut.unbootable: the sweep of tests/powercut.test.ts over both
 * update cycles (confirmed and never confirmed), summed.
 */
import { nodeCrypto } from '../sdk/image/crypto-node';
import { powerCutSweep } from '../bootloader/powercut';
import { makeImage } from '../tests/helpers/fixtures';
import { appSource, bootFixtures, SMALL_FLASH_BYTES, SMALL_LAYOUT } from '../tests/helpers/boot';
import type { Figures } from './_lib';

export async function run(): Promise<Figures> {
  const fx = await bootFixtures();
  const pad = new TextEncoder().encode('/*' + ' '.repeat(40 * 1024) + '*/\n');
  const app = (c: boolean) => new Uint8Array([...appSource('svc', c), ...pad]);
  let cut = 0;
  let unbootable = 0;
  let unexpected = 0;
  for (const confirms of [true, false]) {
    const update = await makeImage({ version: '1.3.0', securityCounter: 4, app: app(confirms), signers: [fx.ks.targets[0].signer] });
    const r = powerCutSweep({
      layout: SMALL_LAYOUT, flashBytes: SMALL_FLASH_BYTES, root: fx.ks.root, board: 'qemu-virt-arm64', crypto: nodeCrypto,
      factory: fx.v120, factoryCounter: 3, update, updateVersion: '1.3.0', updateConfirms: confirms,
      bootsAfterStage: confirms ? 2 : 5, trialTries: 3,
    });
    cut += r.cutPoints;
    unbootable += r.unbootable;
    unexpected += r.unexpected;
  }
  return {
    cut_points: { value: cut, unit: 'count' },
    unbootable: { value: unbootable, unit: 'count' },
    unverified_runs: { value: unexpected, unit: 'count' },
  };
}
