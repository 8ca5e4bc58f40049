/**
 * Boot images as OTA targets (issue 13; docs/ota-agent.md "Boot images", docs/boot-state.md
 * "A/B boot slots"). A boot image is a U-Boot FIT whose root node carries its release fields —
 * `signet,board`, `signet,version`, `signet,security-counter` — covered by the configuration
 * signature (the root node is a signed node, docs/fit.md §3), so the FIT key vouches for them
 * exactly as the targets keys vouch for an app image's manifest.
 *
 * Here: reading and checking those fields (publish, server, agent), the target entry a boot
 * image gets (`<board>/boot-<version>.itb`, custom.kind "boot", its own security counter), and
 * the agent's side on a device with A/B boot slots (`BootTargetAgent`):
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
 */
import { PartitionDevice, readBytes, writeBytesPadded, type BlockDevice } from '../../bootloader/src/block';
import { loadBoard } from '../board';
import { readBootEnv, writeBootEnv, type BootEnvRead } from '../../bootloader/src/bootenv';
import { decodeFdt, getProp, readString, readU32, stringValue, u32Value } from '../fit/fdt';
import { verifyFit, type FitVerifyKey } from '../fit/fit-verify';
import type { ImageCrypto } from '../image/crypto';
import { SEMVER, BOARD_ID } from '../image/manifest';
import { toHex, utf8Encode } from '../util/bytes';
import type { SignetError } from '../util/errors';
import { parseStrictJsonBytes } from '../util/strict-json';
import type { AgentBootHook, Offer, OtaAgent, UpdateResult } from './agent';
import { BootTargetError } from './boot-target-errors';
import type { MetadataStore } from './client';
import { asSignetError, OtaError } from './errors';
import type { Callback } from './fetcher';
import { BOOT_TARGET_NAME, isBootTarget, targetNameFor, type TargetFile } from './roles';

export const BOOT_BOARD_PROPERTY = 'signet,board';
export const BOOT_VERSION_PROPERTY = 'signet,version';
export const BOOT_COUNTER_PROPERTY = 'signet,security-counter';
/** The FDT header's magic (big-endian d00dfeed): how a boot image is told from an app image. */
export const FIT_MAGIC = [0xd0, 0x0d, 0xfe, 0xed];
const FDT_HEADER_BYTES = 40;

export interface BootRelease {
  board: string;
  version: string;
  securityCounter: number;
  /** The kernel's U-Boot arch ("arm64", "arm"). */
  arch: string;
}

/** The release fields as FIT root properties (`buildFit`'s rootProperties). */
export function bootReleaseProperties(r: { board: string; version: string; securityCounter: number }): { name: string; value: Uint8Array }[] {
  if (!BOARD_ID.test(r.board) || !SEMVER.test(r.version) || !(r.securityCounter >= 0 && r.securityCounter <= 0xffffffff && Math.floor(r.securityCounter) === r.securityCounter)) {
    throw new BootTargetError('E_BOOT_RELEASE', `boot release ${r.board} ${r.version} #${r.securityCounter} needs a board id, a semantic version and a counter 0..2^32-1`);
  }
  return [
    { name: BOOT_BOARD_PROPERTY, value: stringValue(r.board) },
    { name: BOOT_VERSION_PROPERTY, value: stringValue(r.version) },
    { name: BOOT_COUNTER_PROPERTY, value: u32Value(r.securityCounter) },
  ];
}

export function isFit(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && FIT_MAGIC.every((b, i) => bytes[i] === b);
}

/**
 * Verify a boot image as U-Boot's bootm would (configuration signature by one of `keys`, image
 * hashes), then read its signed release fields. Throws FitError/FdtError codes for a FIT that
 * does not verify, E_BOOT_RELEASE for one without release fields.
 */
export function readBootRelease(fit: Uint8Array, keys: readonly FitVerifyKey[]): BootRelease {
  if (!keys.length) throw new BootTargetError('E_BOOT_FIT_KEY', 'no FIT public key to verify the boot image with');
  const verified = verifyFit(fit, keys);
  const root = decodeFdt(fit).root;
  const str = (name: string) => {
    const v = getProp(root, name);
    return v ? readString(v, name) : undefined;
  };
  const board = str(BOOT_BOARD_PROPERTY);
  const version = str(BOOT_VERSION_PROPERTY);
  const counter = getProp(root, BOOT_COUNTER_PROPERTY);
  if (board === undefined || version === undefined || !counter || counter.length !== 4) {
    throw new BootTargetError('E_BOOT_RELEASE', `the boot image carries no signed ${BOOT_BOARD_PROPERTY}, ${BOOT_VERSION_PROPERTY} and ${BOOT_COUNTER_PROPERTY}`);
  }
  if (!BOARD_ID.test(board) || !SEMVER.test(version)) {
    throw new BootTargetError('E_BOOT_RELEASE', `the boot image's release fields (${JSON.stringify(board)}, ${JSON.stringify(version)}) are not a board id and a semantic version`);
  }
  const kernel = verified.images.find((i) => i.role === 'kernel');
  return { board, version, securityCounter: readU32(counter, BOOT_COUNTER_PROPERTY), arch: kernel?.arch ?? '' };
}

/** The targets entry of a boot image (custom.kind "boot", name "boot"). */
export function bootTargetFor(fit: Uint8Array, release: BootRelease, crypto: ImageCrypto): { name: string; file: TargetFile } {
  const custom = { board: release.board, version: release.version, securityCounter: release.securityCounter, name: BOOT_TARGET_NAME, kind: 'boot' as const };
  return { name: targetNameFor(custom), file: { length: fit.length, hashes: { sha256: toHex(crypto.sha256(fit)) }, custom } };
}

// ---------------------------------------------------------------------------------------------
// The device side.

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
  return readBytes(dev, 0, total).slice();
}

/** The release in a boot slot if its FIT verifies, else null (what bootm would refuse). */
export function slotRelease(dev: BlockDevice, keys: readonly FitVerifyKey[]): BootRelease | null {
  try {
    const fit = readSlotFit(dev);
    return fit ? readBootRelease(fit, keys) : null;
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
  fitKeys: FitVerifyKey[];
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
    const rel = slotRelease(dev.slots[slot], this.o.fitKeys);
    if (!rel) return null;
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
      keys: this.o.fitKeys, board: this.o.board, floor: status.floor,
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
    if (v.boot_slot === p.slot && v.boot_good === p.slot) return done('confirmed');
    if (v.boot_slot === p.slot) {
      if (parseInt(v.bootcount, 16) === 0 || p.status === 'booted-trial') return callback(null);
      p.status = 'booted-trial';
      this.setState(st);
      return this.o.agent.report({ rollout: p.rollout, target: p.target, status: 'booted-trial' }, callback);
    }
    return done('failed', 'E_BOOT_TRIAL_EXHAUSTED');
  }
}

export interface StageBootOptions {
  keys: readonly FitVerifyKey[];
  board: string;
  /** Boot images with a lower security counter are refused. */
  floor: number;
  /** What the signed targets entry says the image is (the FIT must say the same). */
  expect?: { board: string; version: string; securityCounter: number };
  /** Called after the slot is written and verified, just before the one write that arms the trial. */
  beforeArm?(slot: BootSlotName, armedSeq: number): void;
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
  const rel = readBootRelease(fit, o.keys);
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
  writeBytesPadded(target, fit);
  target.flush();
  const back = readSlotFit(target);
  if (!back || back.length !== fit.length || toHex(back) !== toHex(fit)) throw new BootTargetError('E_BOOT_READBACK', 'boot slot ' + slot + ' reads back differently');
  readBootRelease(back, o.keys);
  const armedSeq = parseInt(env.vars.ab_seq, 16) + 1;
  if (o.beforeArm) o.beforeArm(slot, armedSeq);
  // One sector into the environment copy that is not current: the trial is armed, or not.
  writeBootEnv(dev.env, env, { boot_slot: slot, bootcount: '0', bootlimit: env.vars.bootlimit, boot_good: running });
  return { slot, release: rel };
}

/**
 * What U-Boot's A/B bootcmd (sdk/disk/boot-ab.ts `abUbootEnv`) does at power-on, for the
 * simulated device (which has no U-Boot): read the environment (defaults: slot a, no tries),
 * count this boot, switch slots past bootlimit, write the older copy, then `bootm` the slot — a
 * FIT that does not verify resets and counts as a try. Returns the slot booted and its release,
 * or null when neither slot boots within the tries both slots are allowed.
 */
export function ubootAbBoot(dev: BootSlotsDevice, keys: readonly FitVerifyKey[], log?: (line: string) => void): { slot: BootSlotName; release: BootRelease } | null {
  for (let attempt = 0; attempt < 64; attempt++) {
    const env = readBootEnv(dev.env);
    const v = env.vars || { ab_seq: '0', boot_slot: 'a', bootcount: '0', bootlimit: '3' };
    let slot: BootSlotName = v.boot_slot === 'b' ? 'b' : 'a';
    let count = parseInt(v.bootcount || '0', 16) + 1;
    const limit = parseInt(v.bootlimit || '0', 16);
    if (count > limit) {
      slot = other(slot);
      count = 1;
    }
    const next: { [k: string]: string } = { boot_slot: slot, bootcount: count.toString(16), bootlimit: v.bootlimit || '3' };
    if (v.boot_good) next.boot_good = v.boot_good;
    writeBootEnv(dev.env, env.vars ? env : { vars: null, current: -1, refused: env.refused }, next);
    if (log) log('signet-ab: boot_slot=' + slot + ' bootcount=' + count.toString(16));
    const rel = slotRelease(dev.slots[slot], keys);
    if (rel) return { slot, release: rel };
    if (log) log('signet-ab: bootm refused slot ' + slot + '; reset');
    // Both slots refused more than bootlimit times each: nothing U-Boot can boot.
    if (attempt > 2 * (limit + 1)) return null;
  }
  return null;
}

/** A device's boot slots and environment on one block device (the A/B layout's byte ranges). */
export function bootSlotsOn(flash: BlockDevice, ab: { boot_a: { offset: number; size: number }; boot_b: { offset: number; size: number }; bootenv: { offset: number; size: number } }): BootSlotsDevice {
  return {
    slots: { a: new PartitionDevice(flash, ab.boot_a.offset, ab.boot_a.size), b: new PartitionDevice(flash, ab.boot_b.offset, ab.boot_b.size) },
    env: new PartitionDevice(flash, ab.bootenv.offset, ab.bootenv.size),
  };
}

/**
 * What a publisher and the server require of a boot image before it may become a target: it
 * verifies against the FIT key, its signed release names a known board, and the kernel's arch
 * is that board's. Node only (board files).
 */
export function checkBootRelease(fit: Uint8Array, keys: readonly FitVerifyKey[]): BootRelease {
  const rel = readBootRelease(fit, keys);
  const board = loadBoard(rel.board);
  const want = board.arch === 'arm64' ? 'arm64' : 'arm';
  if (rel.arch !== want) {
    throw new BootTargetError('E_BOOT_BOARD', `the boot image names board ${rel.board} (${want}) but its kernel is for ${JSON.stringify(rel.arch)}`);
  }
  return rel;
}
