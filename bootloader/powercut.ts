/**
 * The power-cut sweep: run a full update cycle on the flash test double, cut the power after
 * every single write the stage makes (a sector program, or on an erase-block flash also an
 * erase), reboot from what is on flash, and count the outcomes. `cutEverywhere` is the sweep
 * itself, `bootOnce` one boot of the real stage with what the app does on it; `powerCutSweep`
 * is the app-slot update cycle (tests/powercut.test.ts, `npm run bench -- powercut`),
 * tests/helpers/erase-powercut.ts the same on a board's erase-block layout.
 */
import type { ImageCrypto } from '../sdk/image/crypto';
import type { RootSigned } from '../sdk/ota/metadata';
import { PartitionDevice, type BlockDevice } from './src/block';
import { SimFlash } from './src/block-sim';
import { errorCode } from './src/errors';
import { provisionFlash, type FlashLayout } from './src/provision';
import { BootStage, type BootChoice } from './src/stage';

/** The device a boot runs on: its layout, trust anchor and board. */
export interface SweepDevice {
  layout: FlashLayout;
  root: RootSigned;
  board: string;
  crypto: ImageCrypto;
  trialTries: number;
  /** The medium as the stage's writers see it (default: the flash itself). */
  view?: (flash: BlockDevice) => BlockDevice;
}

/** A partition of `flash` as the device's writers see it. */
export function sweepPart(flash: BlockDevice, d: SweepDevice, x: { offset: number; size: number }): PartitionDevice {
  return new PartitionDevice(d.view ? d.view(flash) : flash, x.offset, x.size);
}

export interface BootRecord {
  ran: string | null; // "slot@version" or null (recovery)
  lines: string[];
}

/** One boot: the real stage picks and verifies a slot, then `app` does what the app does on this boot (confirm, stage, config writes). */
export function bootOnce(flash: BlockDevice, d: SweepDevice, app: (stage: BootStage, choice: BootChoice) => void): BootRecord {
  const lines: string[] = [];
  const p = (x: { offset: number; size: number }) => sweepPart(flash, d, x);
  const stage = new BootStage({
    slots: { a: p(d.layout.slot_a), b: p(d.layout.slot_b) },
    state: p(d.layout.state),
    root: d.root,
    board: d.board,
    crypto: d.crypto,
    now: () => null,
    log: (l) => lines.push(l),
    trialTries: d.trialTries,
  });
  const choice = stage.boot();
  if (!choice) return { ran: null, lines };
  app(stage, choice);
  return { ran: choice.slot + '@' + choice.image.manifest.version, lines };
}

/** A factory-provisioned flash (slot A, boot state), its write counter at 0; `eraseBlockSize`: the erase-block double (mtdblock). */
export function factoryFlash(d: SweepDevice, o: { flashBytes: number; factory: Uint8Array; factoryCounter: number; eraseBlockSize?: number }): SimFlash {
  const f = new SimFlash(o.flashBytes, 512, undefined, o.eraseBlockSize);
  provisionFlash(d.view ? d.view(f) : f, d.layout, { slotA: o.factory, securityFloor: o.factoryCounter });
  f.sectorWrites = 0;
  return f;
}

export interface CutSweep<C> {
  /** A fresh device as the cycle starts on it. */
  fresh(): SimFlash;
  /** What one run of the cycle records (its boots, what it promised before the cut). */
  context(): C;
  /** The cycle; a cut ends it with E_POWER_CUT. */
  cycle(flash: SimFlash, c: C): void;
  /** The device powered on again after the cut after `cutAfter` writes (`reference`: the uncut run's context). */
  afterCut(flash: SimFlash, cutAfter: number, c: C, reference: C): void;
}

/**
 * For k = 0 .. (writes of the uncut cycle) - 1: a fresh device, the power cut after k writes,
 * the cycle run into the cut, then `afterCut` on the powered-on device. Returns the cut points
 * and the uncut run's context.
 */
export function cutEverywhere<C>(s: CutSweep<C>): { cutPoints: number; reference: C } {
  const ref = s.fresh();
  const reference = s.context();
  s.cycle(ref, reference);
  const total = ref.sectorWrites;
  for (let k = 0; k < total; k++) {
    const f = s.fresh();
    const c = s.context();
    f.cutPowerAfter(k);
    try {
      s.cycle(f, c);
      throw new Error(`cut after ${k} of ${total} writes did not happen`);
    } catch (e) {
      if (errorCode(e) !== 'E_POWER_CUT') throw e;
    }
    s.afterCut(f.reboot(), k, c, reference);
  }
  return { cutPoints: total, reference };
}

export interface SweepInput extends SweepDevice {
  flashBytes: number;
  /** Sweep on the erase-block double (mtdblock: a write erases its block, then programs it): erases are cut points too. */
  eraseBlockSize?: number;
  /** Factory image in slot A, and the update to stage into B. */
  factory: Uint8Array;
  factoryCounter: number;
  update: Uint8Array;
  updateVersion: string;
  /** Whether the update's app confirms (cycle 1) or never does (cycle 2). */
  updateConfirms: boolean;
  /** Boots to run in one cycle after staging (enough to confirm or exhaust the tries). */
  bootsAfterStage: number;
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

/** The app of this cycle: confirms (the update only if it does), optionally stages the update. */
function appOf(inp: SweepInput, stageUpdate: boolean) {
  return (stage: BootStage, choice: BootChoice) => {
    if (choice.image.manifest.version !== inp.updateVersion || inp.updateConfirms) stage.confirm();
    if (stageUpdate) stage.stageImage(inp.update);
  };
}

/**
 * The app-slot update cycle (boot + stage, then `bootsAfterStage` boots) cut everywhere; after
 * each cut the device reboots from its flash `rebootsAfterCut` times (each boot runs the app,
 * confirming as it would). A reboot that runs no app is unbootable.
 */
export function powerCutSweep(inp: SweepInput, rebootsAfterCut = 4): SweepResult {
  const allowed: Record<string, boolean> = {};
  let unbootable = 0;
  let unexpected = 0;
  const outcomes: Record<string, number> = {};
  const r = cutEverywhere<BootRecord[]>({
    fresh: () => factoryFlash(inp, inp),
    context: () => [],
    cycle: (f, log) => {
      log.push(bootOnce(f, inp, appOf(inp, true)));
      for (let i = 0; i < inp.bootsAfterStage; i++) log.push(bootOnce(f, inp, appOf(inp, false)));
    },
    afterCut: (dev, _k, _c, reference) => {
      // The versions a boot may run: those the uncut cycle ran.
      for (const b of reference) if (b.ran) allowed[b.ran.split('@')[1]] = true;
      for (let i = 0; i < rebootsAfterCut; i++) {
        const b = bootOnce(dev, inp, appOf(inp, false));
        if (i === 0) outcomes[b.ran ?? 'recovery'] = (outcomes[b.ran ?? 'recovery'] ?? 0) + 1;
        if (!b.ran) unbootable++;
        else if (!allowed[b.ran.split('@')[1]]) unexpected++;
        dev = dev.reboot();
      }
    },
  });
  return { cutPoints: r.cutPoints, unbootable, unexpected, outcomes, reference: r.reference };
}
