/**
 * The boot image's TCB record: what a signed boot image is made of, carried inside it so that
 * `signet tcb` can report (and `--vs` compare) any boot image without its build inputs.
 *
 * It is the root property `signet,tcb` of the FIT: gzip (`gzip -9 -n`) of its JSON. The root node is one of the nodes the configuration signature
 * covers (docs/fit.md §3), so the record is signed with the images it describes; U-Boot ignores
 * the property. Layout: docs/build.md, "Boot image TCB".
 */
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Board } from '../board';
import { TcbError } from '../build/tcb-errors';
import { checkNativeTcb, type NativeTcb } from '../build/tcb-native';
import { decodeFdt, getProp } from '../fit/fdt';
import { readCpio } from './cpio';
import { gzipDeterministic } from './gzip';
import { INITRAMFS_BOOT_BYTECODE, INITRAMFS_BOOT_JS, INITRAMFS_INIT } from './initramfs';
import type { BoardKernel } from './kernel';

/** The FIT root property holding the record. */
export const BOOT_TCB_PROPERTY = 'signet,tcb';
export const BOOT_TCB_FORMAT = 'signet-boot-tcb';
export const BOOT_TCB_VERSION = 1;
/** Cap on the record once inflated: a full distribution kernel config is ~100 KB of options. */
export const MAX_BOOT_TCB_BYTES = 4 * 1024 * 1024;

export interface KernelTcb {
  /** `uname -r`. */
  version: string;
  /** Where the kernel came from: "debian-binary" (a Debian linux-image package) or "debian-source" (built from linux-source). */
  source: string;
  /** The Debian package the kernel or its source came from. */
  package: string;
  /** SHA-256 (hex) of the kernel's .config as built. */
  configSha256: string;
  /** CONFIG_* lines with a value (=y, =m, a string or a number). */
  optionsSet: number;
  /** The kernel image as it runs (before the FIT's compression). */
  bytes: number;
  /** As the FIT stores it. */
  fitBytes: number;
  compression: string;
}

export interface InitramfsPart {
  name: string;
  bytes: number;
  /** File paths in the initramfs with their bytes. */
  files: Record<string, number>;
}

export interface BootTcbRecord {
  format: typeof BOOT_TCB_FORMAT;
  version: typeof BOOT_TCB_VERSION;
  board: string;
  arch: string;
  kernel: KernelTcb;
  /** Every option the kernel config sets, without the CONFIG_ prefix: name → value as in .config. */
  kernelOptions: Record<string, string>;
  /** /init (signet-host) by library. */
  native: NativeTcb;
  initramfs: {
    /** The cpio archive. */
    bytes: number;
    /** As the FIT stores it (gzip'd when the kernel unpacks that). */
    fitBytes: number;
    /** Largest first; `other` (directories, headers, small config files) last. Add up to bytes. */
    parts: InitramfsPart[];
  };
  dtbBytes: number;
}

const OPTION_LINE = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/;

/** The options a kernel .config sets (`CONFIG_X=value` lines), without the prefix, in file order. */
export function kernelOptions(config: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of config.split('\n')) {
    const m = OPTION_LINE.exec(line.replace(/\r$/, ''));
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export const INITRAMFS_PART_HOST = 'signet-host (/init)';
export const INITRAMFS_PART_STAGE = 'boot stage';
export const INITRAMFS_PART_MODULES = 'kernel modules';
export const INITRAMFS_PART_OTHER = 'other';

/** The initramfs by part: /init, the boot stage (JS and bytecode), kernel modules, the rest (cpio headers, dirs, small files). */
export function initramfsParts(cpio: Uint8Array): InitramfsPart[] {
  const parts = new Map<string, InitramfsPart>();
  const add = (name: string, path: string, bytes: number) => {
    let p = parts.get(name);
    if (!p) parts.set(name, (p = { name, bytes: 0, files: {} }));
    p.bytes += bytes;
    if (path) p.files[path] = (p.files[path] ?? 0) + bytes;
  };
  let named = 0;
  for (const e of readCpio(cpio)) {
    if (e.data.length === 0) continue;
    const part =
      e.path === INITRAMFS_INIT ? INITRAMFS_PART_HOST
      : e.path === INITRAMFS_BOOT_JS || e.path === INITRAMFS_BOOT_BYTECODE ? INITRAMFS_PART_STAGE
      : e.path.endsWith('.ko') ? INITRAMFS_PART_MODULES
      : undefined;
    if (part === undefined) continue;
    add(part, part === INITRAMFS_PART_MODULES ? basename(e.path) : e.path, e.data.length);
    named += e.data.length;
  }
  add(INITRAMFS_PART_OTHER, '', cpio.length - named);
  const list = [...parts.values()];
  return list.sort((a, b) => (a.name === INITRAMFS_PART_OTHER ? 1 : b.name === INITRAMFS_PART_OTHER ? -1 : b.bytes - a.bytes));
}

export interface BootTcbInput {
  board: Board;
  kernel: BoardKernel;
  fitKernel: { data: Uint8Array; compression: string };
  initramfs: Uint8Array;
  ramdisk: Uint8Array;
  dtb: Uint8Array;
  native: NativeTcb;
}

export function buildBootTcb(i: BootTcbInput): BootTcbRecord {
  const options = kernelOptions(i.kernel.config);
  return {
    format: BOOT_TCB_FORMAT,
    version: BOOT_TCB_VERSION,
    board: i.board.id,
    arch: i.board.arch,
    kernel: {
      version: i.kernel.version,
      source: i.kernel.source,
      package: i.kernel.package,
      configSha256: sha256Hex(i.kernel.config),
      optionsSet: Object.keys(options).length,
      bytes: i.kernel.kernel.length,
      fitBytes: i.fitKernel.data.length,
      compression: i.fitKernel.compression,
    },
    kernelOptions: options,
    native: i.native,
    initramfs: { bytes: i.initramfs.length, fitBytes: i.ramdisk.length, parts: initramfsParts(i.initramfs) },
    dtbBytes: i.dtb.length,
  };
}

/** The bytes of the `signet,tcb` property: gzip -9 -n of the JSON, same record → same bytes. */
export async function encodeBootTcb(record: BootTcbRecord): Promise<Uint8Array> {
  // Key order is fixed by construction (kernel options in .config order), so the JSON is too.
  return gzipDeterministic(new TextEncoder().encode(JSON.stringify(record)));
}

function recordError(why: string): never {
  throw new TcbError('E_TCB_RECORD', `the boot image's ${BOOT_TCB_PROPERTY} record ${why}`);
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isText = (v: unknown): v is string => typeof v === 'string';

/** Reads the property's bytes back, checking every field (fail closed: an unknown version is refused). */
export function decodeBootTcb(bytes: Uint8Array): BootTcbRecord {
  let json: string;
  try {
    json = new TextDecoder('utf-8', { fatal: true }).decode(gunzipSync(bytes, { maxOutputLength: MAX_BOOT_TCB_BYTES }));
  } catch (cause) {
    throw new TcbError('E_TCB_RECORD', `the boot image's ${BOOT_TCB_PROPERTY} record is not gzip'd UTF-8 of at most ${MAX_BOOT_TCB_BYTES} bytes`, cause);
  }
  let r: BootTcbRecord;
  try {
    r = JSON.parse(json) as BootTcbRecord;
  } catch (cause) {
    throw new TcbError('E_TCB_RECORD', `the boot image's ${BOOT_TCB_PROPERTY} record is not JSON`, cause);
  }
  if (typeof r !== 'object' || r === null || r.format !== BOOT_TCB_FORMAT) recordError(`is not a ${BOOT_TCB_FORMAT} record`);
  if (r.version !== BOOT_TCB_VERSION) recordError(`has version ${String(r.version)}, this Signet reads version ${BOOT_TCB_VERSION}`);
  if (!isText(r.board) || !isText(r.arch) || !isCount(r.dtbBytes)) recordError('has no board, arch or dtbBytes');
  const k = r.kernel;
  if (typeof k !== 'object' || k === null || !isText(k.version) || !isText(k.source) || !isText(k.package) || !/^[0-9a-f]{64}$/.test(String(k.configSha256)) ||
    !isCount(k.optionsSet) || !isCount(k.bytes) || !isCount(k.fitBytes) || !isText(k.compression)) {
    recordError('has an incomplete kernel entry');
  }
  const o = r.kernelOptions;
  if (typeof o !== 'object' || o === null || Array.isArray(o) || Object.values(o).some((v) => !isText(v))) recordError('has no kernelOptions map');
  if (Object.keys(o).length !== k.optionsSet) recordError(`lists ${Object.keys(o).length} kernel options but counts ${k.optionsSet}`);
  checkNativeTcb(r.native, `the boot image's ${BOOT_TCB_PROPERTY} native entry`);
  const f = r.initramfs;
  if (typeof f !== 'object' || f === null || !isCount(f.bytes) || !isCount(f.fitBytes) || !Array.isArray(f.parts)) recordError('has an incomplete initramfs entry');
  let sum = 0;
  for (const p of f.parts) {
    if (!isText(p?.name) || !isCount(p.bytes) || typeof p.files !== 'object' || p.files === null) recordError('has an initramfs part without name, bytes or files');
    sum += p.bytes;
  }
  if (sum !== f.bytes) recordError(`has initramfs parts adding up to ${sum} bytes, not ${f.bytes}`);
  return r;
}

/** The record in a FIT's root node; E_TCB_NO_RECORD for a boot image built before records. */
export function readBootTcb(fit: Uint8Array, where: string): BootTcbRecord {
  const root = decodeFdt(fit, { allowTrailingData: true }).root;
  const prop = getProp(root, BOOT_TCB_PROPERTY);
  if (!prop) throw new TcbError('E_TCB_NO_RECORD', `${where} is a boot image with no ${BOOT_TCB_PROPERTY} record`);
  return decodeBootTcb(prop);
}

