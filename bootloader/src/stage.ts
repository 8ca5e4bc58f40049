/**
 * The verifying boot stage (docs/boot-state.md): choose a slot, verify it with the shared
 * verifier, count trial boots, fall back, or stop in recovery. Also the install API used by
 * the OTA agent and by flashing: `stageImage` writes the inactive slot, reads it back and arms a
 * trial; `confirm` makes a trial permanent and raises the security floor.
 *
 * Every decision prints one console line with a stable code. The logic is synchronous and
 * ES5-safe: it runs unchanged on Node and on Duktape inside the guest.
 */
import type { ImageCrypto } from '../../sdk/image/crypto';
import { checkHeaderCaps, checkImageFitsSlot, decodeHeader, imageSizeFrom, sigBlockOffset, SIG_BLOCK_HEADER_SIZE, HEADER_SIZE } from '../../sdk/image/format';
import { verifyImage, type VerifiedImage } from '../../sdk/image/verify';
import { verifyRootUpdate, type RootSigned } from '../../sdk/ota/metadata';
import { bytesEqual } from '../../sdk/util/bytes';
import { readBytes, writeBytesPadded, type BlockDevice } from './block';
import { BootError, errorCode } from './errors';
import { readRootChain, writeRootChain } from './rootstore';
import {
  copyState, otherSlot, readState, slotStatus, withSlotStatus, writeState,
  type BootState, type SlotName, type StateRead,
} from './state';

export interface BootEnv {
  slots: { a: BlockDevice; b: BlockDevice };
  state: BlockDevice;
  root: RootSigned;
  board: string;
  crypto: ImageCrypto;
  /** Unix seconds, or null when the device has no trustworthy clock. */
  now(): number | null;
  log(line: string): void;
  trialTries: number;
}

export interface BootChoice {
  slot: SlotName;
  trial: boolean;
  image: VerifiedImage;
  /** The app bundle (payload app.js). */
  app: Uint8Array;
}

function slotBytes(dev: BlockDevice): number {
  return dev.sectorCount * dev.sectorSize;
}

/**
 * Read the image in a slot: header first, then the signature-block header, then exactly the
 * image's bytes. Sizes are checked against the slot before anything large is read.
 */
export function readSlotImage(dev: BlockDevice): Uint8Array {
  const size = slotBytes(dev);
  const head = readBytes(dev, 0, HEADER_SIZE);
  if (isErased(head)) throw new BootError('E_SLOT_EMPTY', 'slot holds no image');
  const h = decodeHeader(head);
  // The same slot rules as verifyImage's `slotBytes` (docs/image-format.md §5 step 1–2).
  checkHeaderCaps(h, undefined, size);
  const total = imageSizeFrom(h, readBytes(dev, sigBlockOffset(h), SIG_BLOCK_HEADER_SIZE));
  checkImageFitsSlot(total, size);
  return readBytes(dev, 0, total);
}

function isErased(b: Uint8Array): boolean {
  let ff = true;
  let zero = true;
  for (let i = 0; i < b.length; i++) {
    if (b[i] !== 0xff) ff = false;
    if (b[i] !== 0) zero = false;
  }
  return ff || zero;
}

export class BootStage {
  private readonly env: BootEnv;
  private sr: StateRead | null = null;
  private running: BootChoice | null = null;
  private root: RootSigned | null = null;

  constructor(env: BootEnv) {
    this.env = env;
  }

  /**
   * The root that signs images: the one compiled in, advanced through the chain of newer
   * roots stored in the state partition. Every link is verified again from the compiled root
   * (TUF 5.3.4-5.3.5: threshold of the old and the new keys, version + 1); the first link
   * that does not verify ends the chain. Expiry is not judged here: a device must keep booting
   * what it has even if it has not seen fresh metadata for a long time; freshness is the
   * update agent's business.
   */
  trustedRoot(): RootSigned {
    if (this.root) return this.root;
    let r = this.env.root;
    const chain = readRootChain(this.env.state).links;
    for (let i = 0; i < chain.length; i++) {
      try {
        r = verifyRootUpdate(r, chain[i], this.env.crypto);
      } catch (e) {
        this.env.log('boot[ROOT] reason=' + errorCode(e) + ' link=' + (i + 1));
        break;
      }
    }
    if (chain.length > 0) this.env.log('boot[ROOT] version=' + r.version);
    this.root = r;
    return r;
  }

  /**
   * Install API for root rotation: `links` are root envelopes (JSON bytes) for versions
   * current+1, current+2, ... Each must verify from the current trusted root before anything is
   * written; then the whole chain is stored. Images signed by keys of the new root boot from
   * then on; keys the new root dropped no longer count.
   */
  installRootChain(links: Uint8Array[]): RootSigned {
    let r = this.trustedRoot();
    for (let i = 0; i < links.length; i++) r = verifyRootUpdate(r, links[i], this.env.crypto);
    const prev = readRootChain(this.env.state);
    const all: Uint8Array[] = [];
    for (let i = 0; i < prev.links.length; i++) all.push(prev.links[i]);
    for (let i = 0; i < links.length; i++) all.push(links[i]);
    writeRootChain(this.env.state, prev, all);
    this.root = r;
    this.env.log('boot[ROOT] installed version=' + r.version);
    return r;
  }

  /** The state as last read or written (for tests and `signet run` reports). */
  currentState(): BootState | null {
    return this.sr ? this.sr.state : null;
  }

  private verifySlot(slot: SlotName, floor: number): BootChoice {
    const dev = this.env.slots[slot];
    const bytes = readSlotImage(dev);
    const image = verifyImage(bytes, {
      root: this.trustedRoot(),
      board: this.env.board,
      minSecurityCounter: floor,
      now: this.env.now(),
      crypto: this.env.crypto,
      slotBytes: slotBytes(dev),
    });
    return { slot, trial: false, image, app: image.payloads[0].bytes };
  }

  private save(next: BootState): void {
    this.sr = writeState(this.env.state, this.sr as StateRead, next);
  }

  /** Write only when something changed (flash wear: a good boot writes nothing). */
  private saveIfChanged(next: BootState): void {
    const cur = (this.sr as StateRead).state as BootState;
    if (cur.active !== next.active || cur.slotA !== next.slotA || cur.slotB !== next.slotB ||
        cur.triesLeft !== next.triesLeft || cur.securityFloor !== next.securityFloor ||
        cur.lastResult !== next.lastResult || cur.lastSlot !== next.lastSlot || cur.lastError !== next.lastError) {
      this.save(next);
    }
  }

  /**
   * No intact state copy: rebuild it from what verifies, failing closed on rollback — the
   * floor becomes the highest security counter among the slots that verify, so corrupting the
   * state cannot be used to boot an older image.
   */
  private rebuildState(): void {
    this.env.log('boot[STATE] reason=E_STATE_CORRUPT');
    const ok: { slot: SlotName; counter: number }[] = [];
    const slots: SlotName[] = ['a', 'b'];
    for (let i = 0; i < slots.length; i++) {
      try {
        ok.push({ slot: slots[i], counter: this.verifySlot(slots[i], 0).image.manifest.securityCounter });
      } catch (_e) {
        // not bootable; status below says so
      }
    }
    let best: SlotName = 'a';
    let floor = 0;
    for (let i = 0; i < ok.length; i++) {
      if (ok[i].counter > floor || i === 0) {
        floor = ok[i].counter;
        best = ok[i].slot;
      }
    }
    const good = (s: SlotName) => {
      for (let i = 0; i < ok.length; i++) if (ok[i].slot === s && ok[i].counter >= floor) return true;
      return false;
    };
    this.save({
      seq: 0, active: best, slotA: good('a') ? 'good' : 'bad', slotB: good('b') ? 'good' : 'bad', triesLeft: 0,
      securityFloor: floor, lastResult: 'none', lastSlot: best, lastError: 'E_STATE_CORRUPT',
    });
  }

  /** Decide what runs. Returns null in recovery (nothing verifies): no app may run. */
  boot(): BootChoice | null {
    this.sr = readState(this.env.state);
    if (!this.sr.state) this.rebuildState();
    else if (!this.sr.valid[0] || !this.sr.valid[1]) {
      this.env.log('boot[STATE] copy=' + (this.sr.valid[0] ? 1 : 0) + ' reason=E_STATE_TORN');
    }
    let s = copyState((this.sr as StateRead).state as BootState);

    // A trial that used up its tries without confirm() is bad; fall back to the good slot.
    let trial: SlotName | null = s.slotA === 'trial' ? 'a' : s.slotB === 'trial' ? 'b' : null;
    let fellBack = false;
    if (trial && s.triesLeft <= 0) {
      fellBack = true;
      this.env.log('boot[FALLBACK] slot=' + trial + ' reason=E_TRIAL_EXHAUSTED');
      s = withSlotStatus(s, trial, 'bad');
      s.lastResult = 'fallback';
      s.lastSlot = trial;
      s.lastError = 'E_TRIAL_EXHAUSTED';
      this.save(s);
      s = copyState((this.sr as StateRead).state as BootState);
      trial = null;
    }

    const order: SlotName[] = [];
    if (trial) order.push(trial);
    if (slotStatus(s, s.active) === 'good') order.push(s.active);
    const other = otherSlot(s.active);
    if (other !== trial && slotStatus(s, other) === 'good') order.push(other);

    const reasons: string[] = [];
    for (let i = 0; i < order.length; i++) {
      const slot = order[i];
      let choice: BootChoice;
      try {
        choice = this.verifySlot(slot, s.securityFloor);
      } catch (e) {
        const code = errorCode(e);
        if (code === 'E_POWER_CUT') throw e;
        reasons.push(slot + '=' + code);
        fellBack = true;
        this.env.log('boot[FALLBACK] slot=' + slot + ' reason=' + code);
        s = withSlotStatus(s, slot, 'bad');
        s.lastResult = 'fallback';
        s.lastSlot = slot;
        s.lastError = code;
        this.save(s);
        s = copyState((this.sr as StateRead).state as BootState);
        continue;
      }
      const m = choice.image.manifest;
      if (slot === trial) {
        // Count the try before the app starts: a hang or a crash still uses it up.
        s.triesLeft = s.triesLeft - 1;
        s.lastResult = 'trial';
        s.lastSlot = slot;
        s.lastError = '';
        this.save(s);
        choice.trial = true;
        this.env.log('boot[TRIAL] slot=' + slot + ' version=' + m.version + ' tries=' + s.triesLeft);
      } else {
        s.active = slot;
        s.lastSlot = slot;
        if (!fellBack) {
          // A fallback in this boot stays recorded (result and code) until the next clean boot.
          s.lastResult = 'ok';
          s.lastError = '';
        }
        this.saveIfChanged(s);
        this.env.log('boot[OK] slot=' + slot + ' version=' + m.version);
      }
      this.running = choice;
      return choice;
    }
    if (order.length === 0) reasons.push('a=' + s.slotA, 'b=' + s.slotB);
    this.env.log('boot[RECOVERY] reason=E_NO_BOOTABLE_SLOT ' + reasons.join(' '));
    s.lastResult = 'recovery';
    s.lastError = 'E_NO_BOOTABLE_SLOT';
    this.saveIfChanged(s);
    return null;
  }

  /**
   * The app's health check passed. A trial slot becomes good and active, and the security
   * floor rises to its counter. On a good slot it only raises the floor if needed; calling it
   * on every boot costs no flash write.
   */
  confirm(): void {
    const run = this.running;
    if (!run) throw new BootError('E_NOT_TRIAL', 'confirm() before a slot was booted');
    this.sr = readState(this.env.state);
    const s = copyState((this.sr as StateRead).state as BootState);
    const counter = run.image.manifest.securityCounter;
    if (slotStatus(s, run.slot) === 'trial') {
      const n = withSlotStatus(s, run.slot, 'good');
      n.active = run.slot;
      n.triesLeft = 0;
      n.securityFloor = counter > s.securityFloor ? counter : s.securityFloor;
      n.lastResult = 'ok';
      n.lastSlot = run.slot;
      n.lastError = '';
      this.save(n);
      this.env.log('boot[CONFIRM] slot=' + run.slot + ' version=' + run.image.manifest.version + ' floor=' + n.securityFloor);
      run.trial = false;
      return;
    }
    if (slotStatus(s, run.slot) === 'good' && counter > s.securityFloor) {
      s.securityFloor = counter;
      this.save(s);
      this.env.log('boot[CONFIRM] slot=' + run.slot + ' version=' + run.image.manifest.version + ' floor=' + counter);
    }
  }

  /**
   * Install API: write `bytes` into the inactive slot and arm a trial boot. Everything that
   * can be checked is checked before the first write; what was written is read back and
   * verified again before the trial is armed. Power may fail at any write: until the final
   * state write the slot is marked empty, so the device keeps booting the current image.
   */
  stageImage(bytes: Uint8Array): VerifiedImage {
    const sr = readState(this.env.state);
    if (!sr.state) throw new BootError('E_STATE_CORRUPT', 'no valid boot state; boot once before staging');
    this.sr = sr;
    const s = copyState(sr.state);
    if (s.slotA === 'trial' || s.slotB === 'trial') {
      throw new BootError('E_STAGE_BUSY', 'an update is already waiting for its trial boot');
    }
    const running = this.running ? this.running.slot : s.active;
    const target = otherSlot(running);
    const dev = this.env.slots[target];
    const opts = {
      root: this.trustedRoot(), board: this.env.board, minSecurityCounter: s.securityFloor,
      now: this.env.now(), crypto: this.env.crypto, slotBytes: slotBytes(dev),
    };
    // Refuses before anything is written; an image larger than the slot is E_SIZE_CAP, as at boot.
    const verified = verifyImage(bytes, opts);

    if (slotStatus(s, target) !== 'empty') {
      const n = withSlotStatus(s, target, 'empty');
      this.save(n);
    }
    // Before the first byte of the slot is written: where a test cuts the power mid-write.
    this.env.log('boot[STAGE-WRITE] slot=' + target + ' bytes=' + bytes.length);
    writeBytesPadded(dev, bytes);
    dev.flush();
    let readBack: Uint8Array;
    try {
      readBack = readSlotImage(dev);
      verifyImage(readBack, opts);
    } catch (e) {
      if (errorCode(e) === 'E_POWER_CUT') throw e;
      throw new BootError('E_STAGE_READBACK', 'the slot does not read back as a valid image (' + errorCode(e) + ')', e);
    }
    if (!bytesEqual(readBack, bytes)) throw new BootError('E_STAGE_READBACK', 'the slot reads back different bytes');
    const cur = copyState((this.sr as StateRead).state as BootState);
    const armed = withSlotStatus(cur, target, 'trial');
    armed.triesLeft = this.env.trialTries;
    this.save(armed);
    this.env.log('boot[STAGED] slot=' + target + ' version=' + verified.manifest.version + ' tries=' + this.env.trialTries);
    return verified;
  }
}
