/**
 * Power-cut safety: cut the power after every single sector write of a full update cycle
 * (confirmed, and never confirmed), reboot from flash, and require a verified app to run every
 * time. Then random bit flips in the state copies and slots: the stage boots a valid image or
 * reports recovery, and never runs an image that does not verify.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { verifyImage } from '../sdk/image/verify';
import { powerCutSweep, type SweepInput } from '../bootloader/powercut';
import { readSlotImage } from '../bootloader/src/stage';
import { makeImage } from './helpers/fixtures';
import { appSource, bootFixtures, bootOnce, newFlash, parts, SMALL_FLASH_BYTES, SMALL_LAYOUT, type BootFixtures } from './helpers/boot';
import { xorshift } from './helpers/mutate';

let fx: BootFixtures;
let big130: Uint8Array;
let big130NoConfirm: Uint8Array;
beforeAll(async () => {
  fx = await bootFixtures();
  // A 40 KB payload so the slot write spans ~80 sectors: many cut points inside the image.
  const pad = ' '.repeat(40 * 1024);
  const app = (confirm: boolean) => new Uint8Array([...appSource('svc', confirm), ...new TextEncoder().encode('/*' + pad + '*/\n')]);
  big130 = await makeImage({ version: '1.3.0', securityCounter: 4, app: app(true), signers: [fx.ks.targets[0].signer] });
  big130NoConfirm = await makeImage({ version: '1.3.0', securityCounter: 4, app: app(false), signers: [fx.ks.targets[0].signer] });
});

const input = (update: Uint8Array, confirms: boolean): SweepInput => ({
  layout: SMALL_LAYOUT,
  flashBytes: SMALL_FLASH_BYTES,
  root: fx.ks.root,
  board: 'qemu-virt-arm64',
  crypto: nodeCrypto,
  factory: fx.v120,
  factoryCounter: 3,
  update,
  updateVersion: '1.3.0',
  updateConfirms: confirms,
  bootsAfterStage: confirms ? 2 : 5,
  trialTries: 3,
});

describe('power-cut sweep', () => {
  it('cycle 1 (stage, trial, confirm): every cut point reboots into a verified app', () => {
    const r = powerCutSweep(input(big130, true));
    expect(r.reference.map((b) => b.ran)).toEqual(['a@1.2.0', 'b@1.3.0', 'b@1.3.0']);
    expect(r.cutPoints).toBeGreaterThan(80);
    expect(r.unbootable).toBe(0);
    expect(r.unexpected).toBe(0);
    // Both outcomes occur: cuts before the trial is armed keep 1.2.0, later ones reach 1.3.0.
    expect(Object.keys(r.outcomes).sort()).toEqual(['a@1.2.0', 'b@1.3.0']);
  });
  it('cycle 1 on the erase-block double (8 KiB blocks): erases are cut points too, and every one reboots into a verified app', () => {
    const sectors = powerCutSweep(input(big130, true));
    const r = powerCutSweep({ ...input(big130, true), eraseBlockSize: 8192 });
    expect(r.reference.map((b) => b.ran)).toEqual(['a@1.2.0', 'b@1.3.0', 'b@1.3.0']);
    expect(r.cutPoints).toBeGreaterThan(sectors.cutPoints);
    expect(r.unbootable).toBe(0);
    expect(r.unexpected).toBe(0);
    expect(Object.keys(r.outcomes).sort()).toEqual(['a@1.2.0', 'b@1.3.0']);
  });
  it('cycle 2 (stage, trial never confirmed): every cut point reboots into a verified app', () => {
    const r = powerCutSweep(input(big130NoConfirm, false));
    expect(r.reference.map((b) => b.ran)).toEqual(['a@1.2.0', 'b@1.3.0', 'b@1.3.0', 'b@1.3.0', 'a@1.2.0', 'a@1.2.0']);
    expect(r.unbootable).toBe(0);
    expect(r.unexpected).toBe(0);
  });
});

describe('random bit flips', () => {
  it('in the state copies: a valid image boots or recovery is reported; never an unverified run', () => {
    const rand = xorshift(7);
    const st = SMALL_LAYOUT.state;
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const f = newFlash({ slotA: fx.v120, slotB: fx.v130, floor: 3 });
      const flips = 1 + Math.floor(rand() * 8);
      for (let j = 0; j < flips; j++) {
        const copy = Math.floor(rand() * 2);
        f.flipBit(st.offset + copy * (st.size / 2) + Math.floor(rand() * 64), Math.floor(rand() * 8));
      }
      const r = bootOnce(f, fx.ks);
      if (r.ran) {
        seen.add(r.ran);
        const slot = r.ran[0] as 'a' | 'b';
        // What ran verifies, from what is on flash now.
        expect(() => verifyImage(readSlotImage(parts(f)[slot]), { root: fx.ks.root, board: 'qemu-virt-arm64', crypto: nodeCrypto })).not.toThrow();
      } else {
        expect(r.lines.at(-1)).toMatch(/^boot\[RECOVERY\] reason=E_NO_BOOTABLE_SLOT/);
        seen.add('recovery');
      }
    }
    expect(seen.size).toBeGreaterThan(0);
  });
  it('in the slots: a tampered image never runs', async () => {
    const rand = xorshift(11);
    let fellBack = 0;
    for (let i = 0; i < 200; i++) {
      const f = newFlash({ slotA: fx.v120, slotB: fx.v130, floor: 3 });
      const slot = rand() < 0.5 ? SMALL_LAYOUT.slot_a : SMALL_LAYOUT.slot_b;
      const len = slot === SMALL_LAYOUT.slot_a ? fx.v120.length : fx.v130.length;
      f.flipBit(slot.offset + Math.floor(rand() * len), Math.floor(rand() * 8));
      const r = bootOnce(f, fx.ks);
      if (r.lines.some((l) => l.startsWith('boot[FALLBACK]'))) fellBack++;
      if (r.ran) {
        const s = r.ran[0] as 'a' | 'b';
        expect(() => verifyImage(readSlotImage(parts(f)[s]), { root: fx.ks.root, board: 'qemu-virt-arm64', crypto: nodeCrypto })).not.toThrow();
      }
    }
    expect(fellBack).toBeGreaterThan(50); // the flips did hit the active image
  });
});
