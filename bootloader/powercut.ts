/**
 * The power-cut sweep: run a full update cycle on the flash test double, cut the power after
 * every single sector write the stage makes, reboot from what is on flash, and count the
 * outcomes. Used by tests/powercut.test.ts and `npm run bench -- powercut`.
 */
import type { ImageCrypto } from '../sdk/image/crypto';
import type { RootSigned } from '../sdk/ota/metadata';
import { PartitionDevice } from './src/block';
import { SimFlash } from './src/block-sim';
import { errorCode } from './src/errors';
import { provisionFlash, type FlashLayout } from './src/provision';
import { BootStage } from './src/stage';

export interface SweepInput {
  layout: FlashLayout;
  flashBytes: number;
  root: RootSigned;
  board: string;
  crypto: ImageCrypto;
  /** Factory image in slot A, and the update to stage into B. */
  factory: Uint8Array;
  factoryCounter: number;
  update: Uint8Array;
  updateVersion: string;
  /** Whether the update's app confirms (cycle 1) or never does (cycle 2). */
  updateConfirms: boolean;
  /** Boots to run in one cycle after staging (enough to confirm or exhaust the tries). */
  bootsAfterStage: number;
  trialTries: number;
}

export interface BootRecord {
  ran: string | null; // "slot@version" or null (recovery)
  lines: string[];
}

/** One boot: boot, run the "app" (confirm or not), optionally stage an update. */
function bootOnce(flash: SimFlash, inp: SweepInput, stageUpdate: boolean): BootRecord {
  const lines: string[] = [];
  const p = (x: { offset: number; size: number }) => new PartitionDevice(flash, x.offset, x.size);
  const stage = new BootStage({
    slots: { a: p(inp.layout.slot_a), b: p(inp.layout.slot_b) },
    state: p(inp.layout.state),
    root: inp.root,
    board: inp.board,
    crypto: inp.crypto,
    now: () => null,
    log: (l) => lines.push(l),
    trialTries: inp.trialTries,
  });
  const choice = stage.boot();
  if (!choice) return { ran: null, lines };
  const ran = choice.slot + '@' + choice.image.manifest.version;
  const isUpdate = choice.image.manifest.version === inp.updateVersion;
  if (!isUpdate || inp.updateConfirms) stage.confirm();
  if (stageUpdate) stage.stageImage(inp.update);
  return { ran, lines };
}

function fresh(inp: SweepInput): SimFlash {
  const f = new SimFlash(inp.flashBytes);
  provisionFlash(f, inp.layout, { slotA: inp.factory, securityFloor: inp.factoryCounter });
  f.sectorWrites = 0;
  return f;
}

/** The whole cycle: boot + stage, then `bootsAfterStage` boots. Throws E_POWER_CUT if cut. */
function cycle(f: SimFlash, inp: SweepInput, log: BootRecord[]): void {
  log.push(bootOnce(f, inp, true));
  for (let i = 0; i < inp.bootsAfterStage; i++) log.push(bootOnce(f, inp, false));
}

export interface SweepResult {
  cutPoints: number;
  unbootable: number;
  /** Boots after a cut that ran something other than the factory image or the update. */
  unexpected: number;
  /** What the first boot after each cut ran, counted. */
  outcomes: Record<string, number>;
  /** The boot log of the uncut cycle. */
  reference: BootRecord[];
}

/**
 * For k = 0 .. (sector writes of the uncut cycle) - 1: cut after k writes, then reboot the
 * device from its flash `rebootsAfterCut` times (each boot runs the app, confirming as it
 * would). A reboot that runs no app is unbootable.
 */
export function powerCutSweep(inp: SweepInput, rebootsAfterCut = 4): SweepResult {
  const reference: BootRecord[] = [];
  const ref = fresh(inp);
  cycle(ref, inp, reference);
  const total = ref.sectorWrites;
  const allowed: Record<string, boolean> = {};
  for (const r of reference) if (r.ran) allowed[r.ran.split('@')[1]] = true;

  let unbootable = 0;
  let unexpected = 0;
  const outcomes: Record<string, number> = {};
  for (let k = 0; k < total; k++) {
    const f = fresh(inp);
    f.cutPowerAfter(k);
    try {
      cycle(f, inp, []);
      throw new Error(`cut after ${k} of ${total} writes did not happen`);
    } catch (e) {
      if (errorCode(e) !== 'E_POWER_CUT') throw e;
    }
    let dev = f.reboot();
    for (let i = 0; i < rebootsAfterCut; i++) {
      const r = bootOnce(dev, inp, false);
      if (i === 0) outcomes[r.ran ?? 'recovery'] = (outcomes[r.ran ?? 'recovery'] ?? 0) + 1;
      if (!r.ran) unbootable++;
      else if (!allowed[r.ran.split('@')[1]]) unexpected++;
      dev = dev.reboot();
    }
  }
  return { cutPoints: total, unbootable, unexpected, outcomes, reference };
}
