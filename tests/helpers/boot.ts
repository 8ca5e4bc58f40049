/** Boot-stage scenarios shared by the unit, differential and power-cut tests and benches. */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBoard, type Board } from '../../sdk/board';
import { nodeCrypto } from '../../sdk/image/crypto-node';
import { utf8Encode } from '../../sdk/util/bytes';
import { PartitionDevice, type BlockDevice } from '../../bootloader/src/block';
import { SimFlash } from '../../bootloader/src/block-sim';
import { provisionFlash, type FlashLayout } from '../../bootloader/src/provision';
import { BootStage, type BootEnv } from '../../bootloader/src/stage';
import type { BootState } from '../../bootloader/src/state';
import { makeImage, makeKeySet, type TestKeySet } from './fixtures';

/** A small flash for fast tests: same partition names as a real board, tiny sizes. */
export const SMALL_LAYOUT: FlashLayout = {
  slot_a: { offset: 64 * 1024, size: 256 * 1024 },
  slot_b: { offset: 320 * 1024, size: 256 * 1024 },
  state: { offset: 576 * 1024, size: 64 * 1024 },
};
export const SMALL_FLASH_BYTES = 640 * 1024;

/** A tiny board derived from qemu-virt-arm64 with SMALL_LAYOUT (for bundles in tests). */
export function smallBoard(): Board {
  const b = loadBoard('qemu-virt-arm64');
  return {
    ...b,
    flash: {
      ...b.flash,
      size: SMALL_FLASH_BYTES,
      partitions: [
        { name: 'boot', offset: 0, size: 64 * 1024 },
        { name: 'slot_a', ...SMALL_LAYOUT.slot_a },
        { name: 'slot_b', ...SMALL_LAYOUT.slot_b },
        { name: 'state', ...SMALL_LAYOUT.state },
      ],
    },
  };
}

export function appSource(name: string, confirm: boolean): Uint8Array {
  return utf8Encode(
    `__signet_host.log("app[${name}] version=" + __signet_host.version + " board=" + __signet_host.board);\n` +
      (confirm ? '__signet_host.confirm();\n' : '') +
      `__signet_host.log("app[${name}] done");\n`,
  );
}

export interface BootFixtures {
  ks: TestKeySet;
  other: TestKeySet;
  v120: Uint8Array; // counter 3, confirms
  v130: Uint8Array; // counter 4, confirms
  v130NoConfirm: Uint8Array; // counter 4, never confirms
  v100: Uint8Array; // counter 1 (rollback)
  wrongKey: Uint8Array;
  wrongBoard: Uint8Array;
}

export async function bootFixtures(): Promise<BootFixtures> {
  const ks = await makeKeySet(1, 1);
  const other = await makeKeySet(1, 1);
  const s = [ks.targets[0].signer];
  return {
    ks,
    other,
    v120: await makeImage({ version: '1.2.0', securityCounter: 3, app: appSource('svc', true), signers: s }),
    v130: await makeImage({ version: '1.3.0', securityCounter: 4, app: appSource('svc', true), signers: s }),
    v130NoConfirm: await makeImage({ version: '1.3.0', securityCounter: 4, app: appSource('svc', false), signers: s }),
    v100: await makeImage({ version: '1.0.0', securityCounter: 1, app: appSource('svc', true), signers: s }),
    wrongKey: await makeImage({ version: '1.2.1', securityCounter: 3, app: appSource('svc', true), signers: [other.targets[0].signer] }),
    wrongBoard: await makeImage({ version: '1.2.2', securityCounter: 3, board: 'xen-arm32', app: appSource('svc', true), signers: s }),
  };
}

export function newFlash(o: { slotA: Uint8Array; slotB?: Uint8Array; floor: number; state?: Partial<BootState> }): SimFlash {
  const f = new SimFlash(SMALL_FLASH_BYTES);
  provisionFlash(f, SMALL_LAYOUT, { slotA: o.slotA, slotB: o.slotB, securityFloor: o.floor, state: o.state });
  f.sectorWrites = 0;
  return f;
}

export function parts(dev: BlockDevice) {
  const p = (x: { offset: number; size: number }) => new PartitionDevice(dev, x.offset, x.size);
  return { a: p(SMALL_LAYOUT.slot_a), b: p(SMALL_LAYOUT.slot_b), state: p(SMALL_LAYOUT.state) };
}

/**
 * One boot of the TypeScript stage directly (no bundle): boot, run the app (its confirm()
 * goes to the stage), collect log lines. `appRuns` says whether any app ran.
 */
export function bootOnce(dev: BlockDevice, ks: TestKeySet, opts: { stage?: Uint8Array } = {}): { lines: string[]; ran: string | null; stage: BootStage } {
  const lines: string[] = [];
  const p = parts(dev);
  const env: BootEnv = {
    slots: { a: p.a, b: p.b },
    state: p.state,
    root: ks.root,
    board: 'qemu-virt-arm64',
    crypto: nodeCrypto,
    now: () => null,
    log: (l) => lines.push(l),
    trialTries: 3,
  };
  const stage = new BootStage(env);
  const choice = stage.boot();
  let ran: string | null = null;
  if (choice) {
    ran = choice.slot + '@' + choice.image.manifest.version;
    const src = new TextDecoder().decode(choice.app);
    const host = { log: (l: string) => lines.push(l), confirm: () => stage.confirm(), version: choice.image.manifest.version, board: 'qemu-virt-arm64' };
    new Function('__signet_host', src)(host);
    if (opts.stage) stage.stageImage(opts.stage);
  }
  return { lines, ran, stage };
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function writeDisk(dir: string, name: string, f: SimFlash): string {
  const p = join(dir, name);
  writeFileSync(p, f.bytes);
  return p;
}

export function copyDisk(from: string, to: string): string {
  copyFileSync(from, to);
  return to;
}

export function readDisk(p: string): Uint8Array {
  return new Uint8Array(readFileSync(p));
}
