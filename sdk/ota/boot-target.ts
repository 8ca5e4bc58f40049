/**
 * Boot images as OTA targets (issue 13; docs/ota-agent.md "Boot images", docs/boot-state.md
 * "A/B boot slots"). A boot image is a U-Boot FIT whose root node carries its release fields —
 * `signet,board`, `signet,version`, `signet,security-counter` — covered by the configuration
 * signature (the root node is a signed node, docs/fit.md §3), so the FIT key vouches for them
 * exactly as the targets keys vouch for an app image's manifest.
 *
 * This module is the Node side: reading and checking those fields with sdk/fit's verifier
 * (publish, server), the target entry a boot image gets (`<board>/boot-<version>.itb`,
 * custom.kind "boot", its own security counter), the model of U-Boot's A/B bootcmd for simulated
 * devices, and `nodeFitCrypto` for the agent. The agent's side (`BootTargetAgent`,
 * `stageBootImage`) is ES5 and lives in boot-target-agent.ts, its FIT check in
 * boot-target-fit.ts; both are re-exported here.
 */
import { createHash } from 'node:crypto';
import { PartitionDevice, type BlockDevice } from '../../bootloader/src/block';
import { loadBoard } from '../board';
import { readBootEnv, writeBootEnv } from '../../bootloader/src/bootenv';
import { decodeFdt, getProp, readString, readU32, stringValue, u32Value } from '../fit/fdt';
import { verifyFit, type FitVerifyKey } from '../fit/fit-verify';
import { verifyPkcs1v15Sha256 } from '../fit/pkcs1';
import type { ImageCrypto } from '../image/crypto';
import { SEMVER, BOARD_ID } from '../image/manifest';
import { toHex } from '../util/bytes';
import { readSlotFit, stageBootImage as stageBootImageWith, type BootSlotName, type BootSlotsDevice, type StageBootOptions } from './boot-target-agent';
import { BootTargetError } from './boot-target-errors';
import { BOOT_BOARD_PROPERTY, BOOT_COUNTER_PROPERTY, BOOT_VERSION_PROPERTY, rsaInputsAcceptable, type BootRelease, type FitCrypto } from './boot-target-fit';
import { BOOT_TARGET_NAME, targetNameFor, type TargetFile } from './roles';

export * from './boot-target-agent';
export * from './boot-target-fit';

/**
 * The agent's FIT crypto on Node: node:crypto's SHA-256 and the BigInt RSASSA-PKCS1-v1_5 verifier
 * of sdk/fit/pkcs1.ts, behind the same input checks as the C host's mbedTLS rsaVerify.
 */
export const nodeFitCrypto: FitCrypto = {
  sha256: (data) => new Uint8Array(createHash('sha256').update(data).digest()),
  rsaVerify: (modulus, exponent, digest, signature) => {
    if (!rsaInputsAcceptable(modulus, exponent, digest, signature)) return false;
    try {
      return verifyPkcs1v15Sha256({ modulus, exponent }, digest, signature);
    } catch {
      return false;
    }
  },
};

/** `stageBootImage` of boot-target-agent.ts, with Node's FIT crypto unless one is given. */
export function stageBootImage(dev: BootSlotsDevice, fit: Uint8Array, o: Omit<StageBootOptions, 'crypto'> & { crypto?: FitCrypto }): { slot: BootSlotName; release: BootRelease } {
  return stageBootImageWith(dev, fit, { ...o, crypto: o.crypto ?? nodeFitCrypto });
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

/** The release in a boot slot if its FIT verifies (sdk/fit, as bootm), else null. */
function ubootSlotRelease(dev: BlockDevice, keys: readonly FitVerifyKey[]): BootRelease | null {
  try {
    const fit = readSlotFit(dev);
    return fit ? readBootRelease(fit, keys) : null;
  } catch {
    return null;
  }
}

function other(s: BootSlotName): BootSlotName {
  return s === 'a' ? 'b' : 'a';
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
    const rel = ubootSlotRelease(dev.slots[slot], keys);
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
