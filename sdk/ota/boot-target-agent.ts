/**
 * The boot-image agent on a device with A/B boot slots (issue 13; docs/ota-agent.md "Boot images",
 * docs/boot-state.md "A/B boot slots"), in ES5: the same code runs bundled in the device's boot
 * stage (bootloader/src/device-main.ts) and on Node (`signet device simulate`, tests). The FIT is
 * checked by sdk/ota/boot-target-fit.ts with the host's SHA-256 and RSA (`FitCrypto`), the board
 * facts (slots, boot environment, FIT key) come from the caller: compiled into the boot stage on a
 * device, from the board file on Node. Flow:
 *
 *   boot offer → TUF refresh → signed entry: kind boot, board, counter ≥ boot floor, length ≤ slot
 *   → download (signed length is the cap, SHA-256 while streaming) → FIT signature + board +
 *   counter ≥ boot floor, entry fields == FIT fields — all before a byte is written → write the
 *   inactive boot slot → read back and verify again → boot environment: boot_slot = it,
 *   bootcount = 0, boot_good = the running slot (U-Boot's bootcmd then trial-boots it and falls
 *   back after bootlimit tries) → report `staged`. The boot stage confirms the boot slot when
 *   the app confirms; on the next boot the agent reports `booted-trial`, `confirmed` (and raises
 *   its boot floor) or `failed` (U-Boot went back: E_BOOT_TRIAL_EXHAUSTED).
 *
 * The boot floor lives in the agent's store (`agent-boot.json`) and is never below the counter
 * of the boot image running now, so a store that is lost or reset cannot let an older image in.
 * Console lines (greppable): ota[BOOT-OFFER], ota[BOOT-WRITE] start/progress, ota[BOOT-ARMED],
 * ota[BOOT-STAGED], ota[BOOT-REFUSED], ota[BOOT-CURRENT].
 */
import { readBytes, type BlockDevice } from '../../bootloader/src/block';
import { readBootEnv, writeBootEnv, type BootEnvRead } from '../../bootloader/src/bootenv';
import { utf8Encode } from '../util/bytes';
import type { SignetError } from '../util/errors';
import { parseStrictJsonBytes } from '../util/strict-json';
import type { AgentBootHook, Offer, OtaAgent, UpdateResult } from './agent';
import { BootTargetError } from './boot-target-errors';
import { verifyBootFit, type BootFitKey, type BootRelease, type FitCrypto } from './boot-target-fit';
import type { MetadataStore } from './client';
import { asSignetError, OtaError } from './errors';
import type { Callback } from './fetcher';
import { isBootTarget, type TargetFile } from './roles';

/** The FDT header's magic (big-endian d00dfeed): how a boot image is told from an app image. */
export const FIT_MAGIC = [0xd0, 0x0d, 0xfe, 0xed];
const FDT_HEADER_BYTES = 40;

export function isFit(bytes: Uint8Array): boolean {
  if (bytes.length < 4) return false;
  for (let i = 0; i < 4; i++) if (bytes[i] !== FIT_MAGIC[i]) return false;
  return true;
}

export type BootSlotName = 'a' | 'b';

/** A device's A/B boot partitions and its boot environment (sdk/disk/boot-ab.ts layout). */
export interface BootSlotsDevice {
  slots: { a: BlockDevice; b: BlockDevice };
  env: BlockDevice;
}

/** A boot image written to the inactive boot slot, waiting for (or in) its trial. Persisted. */
export interface BootPending {
  rollout: string;
  target: string;
  version: string;
  securityCounter: number;
  slot: BootSlotName;
  /** The boot environment's ab_seq once the trial was armed: a lower one means the arming write never landed. */
  armedSeq: number;
  status: 'staged' | 'booted-trial';
}

export const BOOT_STATE_FILE = 'agent-boot.json';

interface BootAgentState {
  floor: number;
  pending: BootPending | null;
}

function other(s: BootSlotName): BootSlotName {
  return s === 'a' ? 'b' : 'a';
}

/** The FIT in a boot slot (its FDT totalsize, capped at the slot), or null when the slot holds none. */
export function readSlotFit(dev: BlockDevice): Uint8Array | null {
  const size = dev.sectorCount * dev.sectorSize;
  const head = readBytes(dev, 0, FDT_HEADER_BYTES);
  if (!isFit(head)) return null;
  const total = ((head[4] << 24) | (head[5] << 16) | (head[6] << 8) | head[7]) >>> 0;
  if (total < FDT_HEADER_BYTES || total > size) return null;
  // A fresh buffer from the device (no typed-array slice() in the device's engine).
  return readBytes(dev, 0, total);
}

/** The release in a boot slot if its FIT verifies, else null (what bootm would refuse). */
export function slotRelease(dev: BlockDevice, keys: readonly BootFitKey[], crypto: FitCrypto): BootRelease | null {
  try {
    const fit = readSlotFit(dev);
    return fit ? verifyBootFit(fit, keys, crypto) : null;
  } catch (_e) {
    return null;
  }
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && v >= 0 && Math.floor(v) === v;
}

/** The check-in answer's `bootOffer` (null when absent); a malformed one is E_API. */
export function parseBootOffer(answer: Uint8Array): Offer | null {
  const v = parseStrictJsonBytes(answer) as Record<string, unknown> | undefined;
  if (!v || typeof v !== 'object') throw new OtaError('E_API', 'check-in answer is not an object');
  const o = v.bootOffer as Record<string, unknown> | null | undefined;
  if (o === undefined || o === null) return null;
  if (typeof o !== 'object' || typeof o.target !== 'string' || typeof o.version !== 'string' || !isCount(o.securityCounter) ||
      !isCount(o.length) || typeof o.sha256 !== 'string' || typeof o.rollout !== 'string') {
    throw new OtaError('E_API', 'check-in bootOffer lacks target, version, securityCounter, length, sha256 or rollout');
  }
  return { target: o.target, version: o.version, securityCounter: o.securityCounter, length: o.length, sha256: o.sha256, rollout: o.rollout };
}

export interface BootTargetAgentOptions {
  agent: OtaAgent;
  store: MetadataStore;
  /** The FIT public key(s) U-Boot holds (`required = "conf"`). */
  fitKeys: readonly BootFitKey[];
  /** SHA-256 and RSA for the FIT check: the C host's on a device, node:crypto and BigInt on Node. */
  fitCrypto: FitCrypto;
  board: string;
  device: () => BootSlotsDevice;
  log?(line: string): void;
}

/** What the device runs from its boot slots, as the check-in reports it. */
export interface BootStatus {
  slot: BootSlotName;
  version: string;
  securityCounter: number;
  /** Boot images below this are refused. */
  floor: number;
}

export class BootTargetAgent implements AgentBootHook {
  private readonly o: BootTargetAgentOptions;
  private running: { slot: BootSlotName; release: BootRelease } | null = null;

  constructor(o: BootTargetAgentOptions) {
    this.o = o;
  }

  private log(line: string): void {
    if (this.o.log) this.o.log(line);
  }

  private state(): BootAgentState {
    const v = parseStrictJsonBytes(this.o.store.read(BOOT_STATE_FILE)) as Partial<BootAgentState> | undefined;
    const floor = v && isCount(v.floor) ? v.floor : 0;
    const p = v && v.pending && typeof v.pending === 'object' ? v.pending : null;
    const pending = p && typeof p.rollout === 'string' && typeof p.target === 'string' && (p.slot === 'a' || p.slot === 'b') && isCount(p.armedSeq) ? p : null;
    return { floor, pending };
  }

  private setState(s: BootAgentState): void {
    this.o.store.write(BOOT_STATE_FILE, utf8Encode(JSON.stringify(s)));
  }

  pending(): BootPending | null {
    return this.state().pending;
  }

  /** The boot slot running now and its release, or null on a device without A/B boot slots. */
  status(): BootStatus | null {
    const dev = this.o.device();
    const env = readBootEnv(dev.env);
    if (!env.vars) return null;
    const slot = env.vars.boot_slot as BootSlotName;
    // The running slot is never written while it runs (only the other one is): its release is
    // read and verified once per slot (a whole boot image: SHA-256 over ~10 MB and RSA).
    let rel = this.running && this.running.slot === slot ? this.running.release : null;
    if (!rel) {
      rel = slotRelease(dev.slots[slot], this.o.fitKeys, this.o.fitCrypto);
      if (!rel) return null;
      this.running = { slot: slot, release: rel };
    }
    return { slot, version: rel.version, securityCounter: rel.securityCounter, floor: Math.max(this.state().floor, rel.securityCounter) };
  }

  /** AgentBootHook: what the check-in says about the boot image. */
  checkin(): Record<string, unknown> | null {
    let s: BootStatus | null;
    try {
      s = this.status();
    } catch (_e) {
      s = null;
    }
    return s ? { version: s.version, securityCounter: s.securityCounter, slot: s.slot } : null;
  }

  /** AgentBootHook: after the app's part of a cycle, the answer's boot offer (if any). */
  afterCheckin(answer: Uint8Array, result: UpdateResult, cb: Callback<UpdateResult>): void {
    const self = this;
    let offer: Offer | null;
    try {
      offer = parseBootOffer(answer);
    } catch (e) {
      return cb(asSignetError(e));
    }
    if (!offer) return cb(null, result);
    const o = offer;
    this.log('ota[BOOT-OFFER] target=' + o.target + ' version=' + o.version + ' rollout=' + o.rollout);
    this.install(o, function (err, slot) {
      if (!err) {
        result.boot = { outcome: slot ? 'staged' : 'current', offer: o, slot: slot || undefined };
        return cb(null, result);
      }
      self.log('ota[BOOT-REFUSED] target=' + o.target + ' reason=' + err.code);
      if (err.code.indexOf('E_FETCH_') === 0 || err.code === 'E_BOOT_BUSY' || err.code === 'E_CLOCK' || err.code === 'E_CLIENT_STATE') return cb(err);
      self.o.agent.report({ rollout: o.rollout, target: o.target, status: 'failed', code: err.code }, function () {
        cb(err);
      });
    });
  }

  /**
   * Refresh, check, download, verify, then write the inactive boot slot and arm its trial.
   * `slot` is null when the offered boot image is what runs.
   */
  install(offer: Offer, cb: (err: SignetError | null, slot?: BootSlotName | null) => void): void {
    const self = this;
    const tuf = this.o.agent.tuf;
    let status: BootStatus;
    let dev: BootSlotsDevice;
    try {
      if (this.state().pending) throw new BootTargetError('E_BOOT_BUSY', 'a boot image waits for its trial boot');
      dev = this.o.device();
      const s = this.status();
      if (!s) throw new BootTargetError('E_BOOT_NO_SLOTS', 'this device has no A/B boot slots with a verified boot image');
      status = s;
    } catch (e) {
      return cb(asSignetError(e));
    }
    tuf.refresh(function (err) {
      if (err) return cb(err);
      let info: TargetFile;
      try {
        // 5.7.1: only the signed entry counts; the offer is advice.
        const t = tuf.target(offer.target);
        if (!t) throw new OtaError('E_TARGET_UNKNOWN', 'target ' + offer.target + ' is not in the signed targets metadata');
        info = t;
        const c = info.custom;
        if (!isBootTarget(c)) throw new OtaError('E_TARGET_MANIFEST', 'target ' + offer.target + ' is not a boot image');
        if (c.board !== self.o.board) throw new OtaError('E_TARGET_BOARD', 'boot image ' + offer.target + ' is for board ' + c.board + ', this device is ' + self.o.board);
        // Anti-rollback before a byte is downloaded.
        if (c.securityCounter < status.floor) {
          throw new BootTargetError('E_BOOT_ROLLBACK', 'boot image ' + offer.target + ' has security counter ' + c.securityCounter + ', below the boot floor ' + status.floor);
        }
        const slotBytes = dev.slots[other(status.slot)].sectorCount * dev.slots[other(status.slot)].sectorSize;
        if (info.length > slotBytes) throw new BootTargetError('E_BOOT_TOO_LARGE', 'boot image ' + offer.target + ' is ' + info.length + ' bytes, a boot slot holds ' + slotBytes);
      } catch (e) {
        return cb(asSignetError(e));
      }
      if (info.custom.version === status.version && info.custom.securityCounter === status.securityCounter) {
        self.log('ota[BOOT-CURRENT] version=' + status.version);
        return cb(null, null);
      }
      self.o.agent.report({ rollout: offer.rollout, target: offer.target, status: 'downloading' }, function () {
        // 5.7.2–5.7.3: the signed length is the hard cap; SHA-256 while streaming.
        tuf.downloadTarget(offer.target, info, function (err2, bytes) {
          if (err2) return cb(err2);
          self.log('ota[BOOT-DOWNLOADED] target=' + offer.target + ' bytes=' + (bytes as Uint8Array).length);
          let slot: BootSlotName;
          try {
            slot = self.write(dev, status, offer, info, bytes as Uint8Array);
          } catch (e) {
            return cb(asSignetError(e));
          }
          self.log('ota[BOOT-STAGED] target=' + offer.target + ' slot=' + slot + ' version=' + info.custom.version);
          self.o.agent.report({ rollout: offer.rollout, target: offer.target, status: 'staged' }, function () {
            cb(null, slot);
          });
        });
      });
    });
  }

  /** Verify the downloaded FIT against its entry, then stage it (stageBootImage) and persist the pending install. */
  private write(dev: BootSlotsDevice, status: BootStatus, offer: Offer, info: TargetFile, fit: Uint8Array): BootSlotName {
    const c = info.custom;
    const self = this;
    const staged = stageBootImage(dev, fit, {
      keys: this.o.fitKeys, crypto: this.o.fitCrypto, board: this.o.board, floor: status.floor, log: this.o.log,
      expect: { board: c.board, version: c.version, securityCounter: c.securityCounter },
      // Persisted before the arming write: after a cut, afterBoot tells "never armed" from "fell back" by ab_seq.
      beforeArm(slot, armedSeq) {
        const st = self.state();
        st.pending = { rollout: offer.rollout, target: offer.target, version: c.version, securityCounter: c.securityCounter, slot, armedSeq, status: 'staged' };
        self.setState(st);
      },
    });
    return staged.slot;
  }

  /**
   * After a boot (and after the app confirmed): report what became of a pending boot image.
   * The boot environment says it: U-Boot counted a try of the new slot (bootcount > 0) →
   * `booted-trial`; the boot stage confirmed it (boot_good = it) → `confirmed`, floor raised;
   * U-Boot went back to the other slot → `failed` E_BOOT_TRIAL_EXHAUSTED.
   */
  afterBoot(callback: (err: SignetError | null) => void): void {
    const st = this.state();
    const p = st.pending;
    if (!p) return callback(null);
    let env: BootEnvRead;
    try {
      env = readBootEnv(this.o.device().env);
    } catch (e) {
      return callback(asSignetError(e));
    }
    const v = env.vars;
    const done = (status: 'confirmed' | 'failed', code?: string) => {
      if (status === 'confirmed') st.floor = Math.max(st.floor, p.securityCounter);
      st.pending = null;
      this.setState(st);
      this.o.agent.report(code ? { rollout: p.rollout, target: p.target, status, code } : { rollout: p.rollout, target: p.target, status }, callback);
    };
    if (!v || parseInt(v.ab_seq, 16) < p.armedSeq) {
      // The arming write never landed (power cut): the device runs what it ran; offer again later.
      this.log('ota[BOOT] armed write lost target=' + p.target);
      st.pending = null;
      this.setState(st);
      return callback(null);
    }
    const confirmed = v.boot_slot === p.slot && v.boot_good === p.slot;
    if (v.boot_slot === p.slot && p.status === 'staged' && (parseInt(v.bootcount, 16) > 0 || confirmed)) {
      // U-Boot booted the new slot: booted-trial first, also when the app confirmed it before
      // this ran (on a device the app runs while the agent reports), then what became of it.
      p.status = 'booted-trial';
      this.setState(st);
      const self = this;
      return this.o.agent.report({ rollout: p.rollout, target: p.target, status: 'booted-trial' }, function (err) {
        if (err) return callback(err);
        self.afterBoot(callback);
      });
    }
    if (confirmed) return done('confirmed');
    if (v.boot_slot === p.slot) return callback(null);
    return done('failed', 'E_BOOT_TRIAL_EXHAUSTED');
  }
}

export interface StageBootOptions {
  keys: readonly BootFitKey[];
  crypto: FitCrypto;
  /** Progress lines: ota[BOOT-WRITE] when the slot write starts and after each BOOT_WRITE_CHUNK, ota[BOOT-ARMED] after the arming write. */
  log?(line: string): void;
  board: string;
  /** Boot images with a lower security counter are refused. */
  floor: number;
  /** What the signed targets entry says the image is (the FIT must say the same). */
  expect?: { board: string; version: string; securityCounter: number };
  /** Called after the slot is written and verified, just before the one write that arms the trial. */
  beforeArm?(slot: BootSlotName, armedSeq: number): void;
}

/** A boot slot is written this much per write call (a progress line after each). */
export const BOOT_WRITE_CHUNK = 128 * 1024;

/** `data` at sector 0 in BOOT_WRITE_CHUNK writes, the last sector padded with 0xff (erased flash). */
function writeSlot(dev: BlockDevice, data: Uint8Array, progress: (bytes: number) => void): void {
  const ss = dev.sectorSize;
  const chunk = Math.max(ss, Math.floor(BOOT_WRITE_CHUNK / ss) * ss);
  for (let at = 0; at < data.length; at += chunk) {
    const n = Math.min(chunk, data.length - at);
    let part = data.subarray(at, at + n);
    if (n % ss !== 0) {
      const padded = new Uint8Array(Math.ceil(n / ss) * ss);
      for (let i = n; i < padded.length; i++) padded[i] = 0xff;
      padded.set(part, 0);
      part = padded;
    }
    dev.write(at / ss, part);
    progress(at + n);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Stage a boot image in the inactive boot slot. Refuses before its first write a FIT that does
 * not verify against the FIT key, is for another board, disagrees with its targets entry or is
 * below the floor, and any update while a boot trial is pending (E_BOOT_BUSY). Then writes the
 * slot (padded with 0xff), flushes, reads it back and verifies it again, and only then writes
 * one sector of the boot environment: boot_slot = the new slot, bootcount = 0, boot_good = the
 * running slot. Until that write U-Boot boots the running slot, whatever write the power is cut
 * after; after it, U-Boot trial-boots the new one and falls back after bootlimit tries.
 */
export function stageBootImage(dev: BootSlotsDevice, fit: Uint8Array, o: StageBootOptions): { slot: BootSlotName; release: BootRelease } {
  const rel = verifyBootFit(fit, o.keys, o.crypto);
  if (rel.board !== o.board) throw new BootTargetError('E_BOOT_BOARD', 'the boot image is for board ' + rel.board + ', this device is ' + o.board);
  const e = o.expect;
  if (e && (rel.board !== e.board || rel.version !== e.version || rel.securityCounter !== e.securityCounter)) {
    throw new OtaError('E_TARGET_MANIFEST', 'boot image (' + rel.board + ' ' + rel.version + ' #' + rel.securityCounter +
      ') differs from its targets entry (' + e.board + ' ' + e.version + ' #' + e.securityCounter + ')');
  }
  if (rel.securityCounter < o.floor) {
    throw new BootTargetError('E_BOOT_ROLLBACK', 'boot image ' + rel.version + ' has security counter ' + rel.securityCounter + ', below the boot floor ' + o.floor);
  }
  const env = readBootEnv(dev.env);
  if (!env.vars) throw new BootTargetError('E_BOOT_NO_SLOTS', 'the boot environment has no valid copy');
  if (env.vars.boot_good !== env.vars.boot_slot) throw new BootTargetError('E_BOOT_BUSY', 'boot slot ' + env.vars.boot_slot + ' is still on trial');
  const running = env.vars.boot_slot as BootSlotName;
  const slot = other(running);
  const target = dev.slots[slot];
  if (fit.length > target.sectorCount * target.sectorSize) {
    throw new BootTargetError('E_BOOT_TOO_LARGE', 'the boot image is ' + fit.length + ' bytes, boot slot ' + slot + ' holds ' + target.sectorCount * target.sectorSize);
  }
  // The running slot and the environment that selects it stay as they are until the new image
  // is on flash and verifies from there.
  const log = o.log || function () {};
  log('ota[BOOT-WRITE] start slot=' + slot + ' bytes=' + fit.length);
  writeSlot(target, fit, function (done) { log('ota[BOOT-WRITE] slot=' + slot + ' written=' + done + ' of=' + fit.length); });
  target.flush();
  const back = readSlotFit(target);
  // Compared by SHA-256 (the host's, native on a device: a byte loop over ~10 MB is slow in the device's engine).
  if (!back || back.length !== fit.length || !sameBytes(o.crypto.sha256(back), o.crypto.sha256(fit))) {
    throw new BootTargetError('E_BOOT_READBACK', 'boot slot ' + slot + ' reads back differently');
  }
  verifyBootFit(back, o.keys, o.crypto);
  const armedSeq = parseInt(env.vars.ab_seq, 16) + 1;
  if (o.beforeArm) o.beforeArm(slot, armedSeq);
  // One sector into the environment copy that is not current: the trial is armed, or not.
  writeBootEnv(dev.env, env, { boot_slot: slot, bootcount: '0', bootlimit: env.vars.bootlimit, boot_good: running });
  log('ota[BOOT-ARMED] slot=' + slot + ' version=' + rel.version + ' ab_seq=' + armedSeq.toString(16));
  return { slot, release: rel };
}

