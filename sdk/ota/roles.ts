/**
 * The TUF `targets`, `snapshot` and `timestamp` roles as Signet uses them (spec 1.0.x, no
 * delegations), and strict shape checks for each. Pure and ES5-safe: the update server checks
 * uploaded targets metadata with these, and the device agent reads the same types.
 *
 * Signet's targets carry `custom: { board, version, securityCounter, name }` so that a client
 * can refuse a target for another board, or below its security-counter floor, before
 * downloading a byte (docs/ota-protocol.md §1).
 */
import { MetadataError } from './errors';
import { parseUtc } from './metadata';

export interface Hashes {
  sha256: string; // 64 lowercase hex digits
}

/** What Signet puts in every target's `custom` field. */
export interface TargetCustom {
  board: string;
  version: string;
  securityCounter: number;
  name: string;
  /**
   * Absent: a Signet app image (`.simg`). `"boot"`: a boot image (U-Boot FIT, `.itb`, named
   * `boot`) for the boot slots, with its own security counter (sdk/ota/boot-target.ts).
   */
  kind?: 'boot';
}

/** The `name` every boot-image target carries (`<board>/boot-<version>.itb`). */
export const BOOT_TARGET_NAME = 'boot';

export interface TargetFile {
  length: number;
  hashes: Hashes;
  custom: TargetCustom;
}

export interface TargetsSigned {
  _type: 'targets';
  spec_version: string;
  version: number;
  expires: string;
  targets: Record<string, TargetFile>;
}

/** An entry of snapshot.meta / timestamp.meta. */
export interface MetaFile {
  version: number;
  length?: number;
  hashes?: Hashes;
}

export interface SnapshotSigned {
  _type: 'snapshot';
  spec_version: string;
  version: number;
  expires: string;
  meta: Record<string, MetaFile>; // exactly { "targets.json": ... }
}

export interface TimestampSigned {
  _type: 'timestamp';
  spec_version: string;
  version: number;
  expires: string;
  meta: Record<string, MetaFile>; // exactly { "snapshot.json": ... }
}

/** Hard caps a Signet client and server apply (docs/ota-protocol.md §1). */
export const MAX_TARGETS = 4096;
export const TARGET_NAME = /^[a-z0-9][a-z0-9-]{0,63}\/[a-z0-9][a-z0-9._-]{0,63}-[0-9A-Za-z.+-]{1,64}\.(simg|itb)$/;
const HEX64 = /^[0-9a-f]{64}$/;
const BOARD = /^[a-z0-9][a-z0-9-]{0,63}$/;
const SERVICE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.prototype.toString.call(v) !== '[object Array]';
}

function isPosInt(v: unknown): v is number {
  return typeof v === 'number' && v >= 1 && Math.floor(v) === v && v <= 9007199254740991;
}

function checkCommon(s: unknown, type: string): Record<string, unknown> {
  if (!isObject(s)) throw new MetadataError('E_META_FORMAT', type + ' "signed" is not an object');
  if (s._type !== type) throw new MetadataError('E_META_TYPE', 'expected ' + type + ' metadata, got _type ' + JSON.stringify(s._type));
  if (typeof s.spec_version !== 'string' || !/^1\.\d+(\.\d+)?$/.test(s.spec_version)) {
    throw new MetadataError('E_META_SPEC', 'unsupported TUF spec_version ' + JSON.stringify(s.spec_version));
  }
  if (!isPosInt(s.version)) throw new MetadataError('E_META_FORMAT', type + ' version must be a positive integer');
  if (typeof s.expires !== 'string' || isNaN(parseUtc(s.expires))) {
    throw new MetadataError('E_META_FORMAT', type + ' expires must be YYYY-MM-DDTHH:MM:SSZ');
  }
  if (s.delegations !== undefined) throw new MetadataError('E_META_FORMAT', 'delegations are not supported');
  return s;
}

function checkHashes(h: unknown, what: string): Hashes {
  if (!isObject(h) || typeof h.sha256 !== 'string' || !HEX64.test(h.sha256)) {
    throw new MetadataError('E_META_FORMAT', what + ' needs hashes.sha256 (64 lowercase hex digits)');
  }
  return h as unknown as Hashes;
}

/** The target name Signet gives an image: `<board>/<name>-<version>.simg`, a boot image `<board>/boot-<version>.itb`. */
export function targetNameFor(custom: { board: string; name: string; version: string; kind?: string }): string {
  return custom.board + '/' + custom.name + '-' + custom.version + (custom.kind === 'boot' ? '.itb' : '.simg');
}

/** Whether a target is a boot image (a FIT for the boot slots) rather than an app image. */
export function isBootTarget(custom: { kind?: string }): boolean {
  return custom.kind === 'boot';
}

/** Targets metadata, every entry a Signet image with consistent `custom` fields. */
export function checkTargetsShape(s: unknown): TargetsSigned {
  const t = checkCommon(s, 'targets');
  if (!isObject(t.targets)) throw new MetadataError('E_META_FORMAT', 'targets metadata needs a "targets" object');
  const names = Object.keys(t.targets);
  if (names.length > MAX_TARGETS) throw new MetadataError('E_META_FORMAT', 'more than ' + MAX_TARGETS + ' targets');
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const f = (t.targets as Record<string, unknown>)[name];
    const what = 'target ' + name;
    if (!TARGET_NAME.test(name)) throw new MetadataError('E_META_FORMAT', what + ' is not named <board>/<name>-<version>.simg (or .itb)');
    if (!isObject(f) || typeof f.length !== 'number' || f.length < 0 || Math.floor(f.length) !== f.length) {
      throw new MetadataError('E_META_FORMAT', what + ' needs a non-negative integer length');
    }
    checkHashes(f.hashes, what);
    const c = f.custom;
    if (!isObject(c) || typeof c.board !== 'string' || !BOARD.test(c.board) || typeof c.name !== 'string' ||
        !SERVICE.test(c.name) || typeof c.version !== 'string' || !SEMVER.test(c.version) ||
        typeof c.securityCounter !== 'number' || c.securityCounter < 0 || c.securityCounter > 0xffffffff ||
        Math.floor(c.securityCounter) !== c.securityCounter) {
      throw new MetadataError('E_META_FORMAT', what + ' needs custom { board, version, securityCounter, name }');
    }
    // Fail closed on a kind this client does not know; a boot image is always named "boot".
    if (c.kind !== undefined && (c.kind !== 'boot' || c.name !== BOOT_TARGET_NAME)) {
      throw new MetadataError('E_META_FORMAT', what + ' has an unknown kind ' + JSON.stringify(c.kind) + ' (only "boot", named "boot")');
    }
    if (targetNameFor(c as unknown as TargetCustom) !== name) {
      throw new MetadataError('E_META_FORMAT', what + ' does not match its custom board/name/version');
    }
  }
  return t as unknown as TargetsSigned;
}

function checkMeta(t: Record<string, unknown>, only: string): MetaFile {
  if (!isObject(t.meta)) throw new MetadataError('E_META_FORMAT', t._type + ' metadata needs a "meta" object');
  const keys = Object.keys(t.meta);
  if (keys.length !== 1 || keys[0] !== only) {
    throw new MetadataError('E_META_FORMAT', t._type + ' meta must list exactly ' + only);
  }
  const m = (t.meta as Record<string, unknown>)[only];
  if (!isObject(m) || !isPosInt(m.version)) throw new MetadataError('E_META_FORMAT', only + ' entry needs a positive version');
  if (m.length !== undefined && (typeof m.length !== 'number' || m.length < 0 || Math.floor(m.length) !== m.length)) {
    throw new MetadataError('E_META_FORMAT', only + ' entry has a bad length');
  }
  if (m.hashes !== undefined) checkHashes(m.hashes, only + ' entry');
  return m as unknown as MetaFile;
}

export function checkSnapshotShape(s: unknown): SnapshotSigned {
  const t = checkCommon(s, 'snapshot');
  checkMeta(t, 'targets.json');
  return t as unknown as SnapshotSigned;
}

export function checkTimestampShape(s: unknown): TimestampSigned {
  const t = checkCommon(s, 'timestamp');
  checkMeta(t, 'snapshot.json');
  return t as unknown as TimestampSigned;
}
