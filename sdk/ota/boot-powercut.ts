/**
 * The power-cut sweep for boot-image updates (the pattern of bootloader/powercut.ts, for the
 * boot slots): stage a new boot image into the inactive boot slot of an A/B flash (the flash
 * test double), cut the power after every single sector write the update makes — the slot
 * write, then the one boot-environment write that arms the trial — power on again through
 * U-Boot's A/B bootcmd (`ubootAbBoot`), and record what boots. Used by
 * tests/ota-boot-target.test.ts and `npm run bench -- boot-powercut`.
 */
import { SimFlash } from '../../bootloader/src/block-sim';
import { provisionBootEnv, readBootEnv } from '../../bootloader/src/bootenv';
import { errorCode } from '../../bootloader/src/errors';
import type { FitVerifyKey } from '../fit/fit-verify';
import { bootSlotsOn, nodeFitCrypto, stageBootImage, ubootAbBoot, type BootSlotName } from './boot-target';

export interface BootSweepInput {
  /** Byte ranges of boot_a, boot_b and bootenv on the flash. */
  ab: { boot_a: { offset: number; size: number }; boot_b: { offset: number; size: number }; bootenv: { offset: number; size: number } };
  flashBytes: number;
  board: string;
  keys: readonly FitVerifyKey[];
  /** The boot image in both slots at the factory (as `signet disk --boot-ab` writes it), and the update. */
  factory: Uint8Array;
  update: Uint8Array;
}

export interface BootCutOutcome {
  /** Sector writes of the update that landed before the cut. */
  cutAfter: number;
  /** What staging said (E_POWER_CUT for a cut, '' when it finished). */
  stage: string;
  /** The boot slot U-Boot booted after the restart (null: nothing boots). */
  booted: BootSlotName | null;
  version: string | null;
  /** The slot the boot environment selects after that boot (must be the one booted). */
  selected: BootSlotName | null;
  /** The running (factory) slot's bytes are what the factory wrote. */
  activeIntact: boolean;
}

export interface BootSweepResult {
  /** Sector writes one uninterrupted update makes: the cut points are 0 … writes − 1. */
  writes: number;
  points: number;
  unbootable: number;
  outcomes: BootCutOutcome[];
}

function fresh(inp: BootSweepInput): SimFlash {
  const flash = new SimFlash(inp.flashBytes, 512);
  const slots = bootSlotsOn(flash, inp.ab);
  for (const s of [slots.slots.a, slots.slots.b]) {
    const buf = new Uint8Array(Math.ceil(inp.factory.length / 512) * 512).fill(0xff);
    buf.set(inp.factory);
    s.write(0, buf);
  }
  provisionBootEnv(slots.env, 'a', 3);
  return flash;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function bootPowercutSweep(inp: BootSweepInput): BootSweepResult {
  const stageOn = (flash: SimFlash) => stageBootImage(bootSlotsOn(flash, inp.ab), inp.update, { keys: inp.keys, crypto: nodeFitCrypto, board: inp.board, floor: 0 });
  // A dry run counts the update's sector writes.
  const dry = fresh(inp);
  const before = dry.sectorWrites;
  stageOn(dry);
  const writes = dry.sectorWrites - before;
  const outcomes: BootCutOutcome[] = [];
  for (let n = 0; n <= writes; n++) {
    const flash = fresh(inp);
    if (n < writes) flash.cutPowerAfter(n);
    let stage = '';
    try {
      stageOn(flash);
    } catch (e) {
      stage = errorCode(e);
    }
    const after = flash.reboot();
    const slots = bootSlotsOn(after, inp.ab);
    const booted = ubootAbBoot(slots, inp.keys);
    const env = readBootEnv(slots.env).vars;
    const a = slots.slots.a.read(0, Math.ceil(inp.factory.length / 512)).subarray(0, inp.factory.length);
    outcomes.push({
      cutAfter: n, stage,
      booted: booted ? booted.slot : null,
      version: booted ? booted.release.version : null,
      selected: env ? (env.boot_slot as BootSlotName) : null,
      activeIntact: sameBytes(a, inp.factory),
    });
  }
  const cuts = outcomes.filter((o) => o.cutAfter < writes);
  return { writes, points: cuts.length, unbootable: outcomes.filter((o) => o.booted === null || o.selected !== o.booted).length, outcomes };
}
