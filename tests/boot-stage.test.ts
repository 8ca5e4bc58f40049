/** The boot stage's decisions, on the TypeScript code directly with the flash test double. */
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeState, encodeState, readState, STATE_FIELDS, STATE_SIZE, initialState } from '../bootloader/src/state';
import { bootFixtures, bootOnce, newFlash, parts, SMALL_LAYOUT, type BootFixtures } from './helpers/boot';

let fx: BootFixtures;
beforeAll(async () => {
  fx = await bootFixtures();
});

const state = (f: ReturnType<typeof newFlash>) => readState(parts(f).state).state!;

describe('boot state format', () => {
  it('field table adds up; encode/decode round-trips; any bit flip is detected', () => {
    expect(STATE_FIELDS.reduce((n, f) => n + f.size, 0)).toBe(STATE_SIZE);
    const s = { ...initialState(7), seq: 42, slotB: 'trial' as const, triesLeft: 2, lastError: 'E_SIGNATURE', lastResult: 'fallback' as const };
    const b = encodeState(s);
    expect(decodeState(b)).toEqual(s);
    for (let bit = 0; bit < STATE_SIZE * 8; bit++) {
      const c = b.slice();
      c[bit >> 3] ^= 1 << (bit & 7);
      expect(decodeState(c), `bit ${bit}`).toBeNull();
    }
  });
});

describe('boot decisions', () => {
  it('good boot: slot a runs; once the result is recorded, a good boot writes nothing', () => {
    const f = newFlash({ slotA: fx.v120, floor: 3 });
    const r = bootOnce(f, fx.ks);
    expect(r.lines).toEqual(['boot[OK] slot=a version=1.2.0', 'app[svc] version=1.2.0 board=qemu-virt-arm64', 'app[svc] done']);
    expect(f.sectorWrites).toBe(1); // factory state said 'none'; now 'ok'
    expect(state(f)).toMatchObject({ lastResult: 'ok', active: 'a' });
    f.sectorWrites = 0;
    expect(bootOnce(f, fx.ks).lines[0]).toBe('boot[OK] slot=a version=1.2.0');
    expect(f.sectorWrites).toBe(0);
  });
  it('tampered slot a falls back to the good image in b', () => {
    const f = newFlash({ slotA: fx.v120, slotB: fx.v100, floor: 1 });
    f.flipBit(SMALL_LAYOUT.slot_a.offset + 200, 3);
    const r = bootOnce(f, fx.ks);
    expect(r.lines[0]).toBe('boot[FALLBACK] slot=a reason=E_SIGNATURE');
    expect(r.lines[1]).toBe('boot[OK] slot=b version=1.0.0');
    expect(state(f)).toMatchObject({ slotA: 'bad', active: 'b', lastResult: 'fallback', lastError: 'E_SIGNATURE' });
  });
  it('wrong key, wrong board, rollback below the floor → recovery, no app', () => {
    for (const [img, code] of [[fx.wrongKey, 'E_UNKNOWN_KEY'], [fx.wrongBoard, 'E_BOARD'], [fx.v100, 'E_ROLLBACK']] as const) {
      const f = newFlash({ slotA: img, floor: 3 });
      const r = bootOnce(f, fx.ks);
      expect(r.ran).toBeNull();
      expect(r.lines).toEqual([`boot[FALLBACK] slot=a reason=${code}`, 'boot[RECOVERY] reason=E_NO_BOOTABLE_SLOT a=' + code]);
      expect(state(f)).toMatchObject({ lastResult: 'recovery', lastError: 'E_NO_BOOTABLE_SLOT', slotA: 'bad' });
    }
  });
  it('update: stage b, trial boot, confirm raises the floor; next boot is b', () => {
    const f = newFlash({ slotA: fx.v120, floor: 3 });
    const r1 = bootOnce(f, fx.ks, { stage: fx.v130 });
    expect(r1.lines.at(-1)).toBe('boot[STAGED] slot=b version=1.3.0 tries=3');
    expect(state(f)).toMatchObject({ slotB: 'trial', triesLeft: 3, active: 'a' });
    const r2 = bootOnce(f, fx.ks);
    expect(r2.lines).toEqual([
      'boot[TRIAL] slot=b version=1.3.0 tries=2',
      'app[svc] version=1.3.0 board=qemu-virt-arm64',
      'boot[CONFIRM] slot=b version=1.3.0 floor=4',
      'app[svc] done',
    ]);
    expect(state(f)).toMatchObject({ slotB: 'good', slotA: 'good', active: 'b', securityFloor: 4 });
    expect(bootOnce(f, fx.ks).lines[0]).toBe('boot[OK] slot=b version=1.3.0');
  });
  it('a trial never confirmed falls back after its tries and is marked bad', () => {
    const f = newFlash({ slotA: fx.v120, floor: 3 });
    bootOnce(f, fx.ks, { stage: fx.v130NoConfirm });
    expect(bootOnce(f, fx.ks).lines[0]).toBe('boot[TRIAL] slot=b version=1.3.0 tries=2');
    expect(bootOnce(f, fx.ks).lines[0]).toBe('boot[TRIAL] slot=b version=1.3.0 tries=1');
    expect(bootOnce(f, fx.ks).lines[0]).toBe('boot[TRIAL] slot=b version=1.3.0 tries=0');
    const r = bootOnce(f, fx.ks);
    expect(r.lines.slice(0, 2)).toEqual(['boot[FALLBACK] slot=b reason=E_TRIAL_EXHAUSTED', 'boot[OK] slot=a version=1.2.0']);
    expect(state(f)).toMatchObject({ slotB: 'bad', active: 'a', securityFloor: 3 });
  });
  it('both slots bad → recovery', () => {
    const f = newFlash({ slotA: fx.v120, slotB: fx.v130, floor: 3 });
    f.flipBit(SMALL_LAYOUT.slot_a.offset + 100, 0);
    f.flipBit(SMALL_LAYOUT.slot_b.offset + 100, 0);
    const r = bootOnce(f, fx.ks);
    expect(r.ran).toBeNull();
    expect(r.lines.at(-1)).toBe('boot[RECOVERY] reason=E_NO_BOOTABLE_SLOT a=E_SIGNATURE b=E_SIGNATURE');
  });
  it('a torn state copy: the other copy is used', () => {
    const f = newFlash({ slotA: fx.v120, floor: 3 });
    const st = SMALL_LAYOUT.state;
    const newest = readState(parts(f).state).newest;
    f.flipBit(st.offset + newest * (st.size / 2) + 10, 1);
    const r = bootOnce(f, fx.ks);
    expect(r.lines[0]).toBe(`boot[STATE] copy=${newest} reason=E_STATE_TORN`);
    expect(r.lines[1]).toBe('boot[OK] slot=a version=1.2.0');
  });
  it('both state copies corrupt: rebuilt with the highest verified counter as floor', () => {
    const f = newFlash({ slotA: fx.v100, slotB: fx.v130, floor: 1 });
    const st = SMALL_LAYOUT.state;
    f.flipBit(st.offset + 10, 1);
    f.flipBit(st.offset + st.size / 2 + 10, 1);
    const r = bootOnce(f, fx.ks);
    expect(r.lines.slice(0, 2)).toEqual(['boot[STATE] reason=E_STATE_CORRUPT', 'boot[OK] slot=b version=1.3.0']);
    expect(state(f)).toMatchObject({ securityFloor: 4, slotA: 'bad', slotB: 'good', active: 'b' });
  });
});

describe('install API (stage)', () => {
  it('refuses before writing: bad signature, wrong board, below the floor, too big', async () => {
    for (const [img, code] of [[fx.wrongKey, 'E_UNKNOWN_KEY'], [fx.wrongBoard, 'E_BOARD'], [fx.v100, 'E_ROLLBACK']] as const) {
      const f = newFlash({ slotA: fx.v120, floor: 3 });
      bootOnce(f, fx.ks); // settle the first-boot state write
      const before = f.bytes.slice();
      expect(() => bootOnce(f, fx.ks, { stage: img })).toThrow(expect.objectContaining({ code }));
      expect(Buffer.compare(Buffer.from(f.bytes), Buffer.from(before))).toBe(0);
    }
    const { makeImage } = await import('./helpers/fixtures');
    const big = await makeImage({ version: '1.4.0', securityCounter: 5, app: new Uint8Array(300 * 1024).fill(0x20), signers: [fx.ks.targets[0].signer] });
    const f = newFlash({ slotA: fx.v120, floor: 3 });
    bootOnce(f, fx.ks);
    f.sectorWrites = 0;
    expect(() => bootOnce(f, fx.ks, { stage: big })).toThrow(expect.objectContaining({ code: 'E_SIZE_CAP' }));
    expect(f.sectorWrites).toBe(0);
  });
  it('refuses a second update while one waits for its trial', () => {
    const f = newFlash({ slotA: fx.v120, floor: 3 });
    bootOnce(f, fx.ks, { stage: fx.v130NoConfirm });
    // The trial is running and has not confirmed: a second update must wait.
    expect(() => bootOnce(f, fx.ks, { stage: fx.v120 })).toThrow(expect.objectContaining({ code: 'E_STAGE_BUSY' }));
  });
});
