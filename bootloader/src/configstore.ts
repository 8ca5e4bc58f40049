/**
 * The config store (docs/boot-state.md §Config store): settings a service changes at run time
 * and the files and secrets provisioned per device (`signet device provision`), kept in the
 * state partition under the same rules as the boot state. Two copies, each in its own area
 * with a sequence number and CRC-32s; a write goes to the area *not* holding the newest valid
 * copy, so a cut write can only damage the older copy and a reader sees the old or the new
 * store, never a mix. ES5-safe: the boot stage runs it on Duktape and passes it to the app.
 *
 * Copy layout (little-endian), one field table for encoder and decoder:
 *   header (32 bytes): magic "SCFG", u16 version 1, u16 header size 32, u32 seq,
 *   u32 data length, u16 entry count, u16 zero, u32 CRC-32 of the data, u32 zero,
 *   u32 CRC-32 of header bytes 0..27;
 *   data: entries sorted by (kind, key), each u8 kind (1 setting, 2 file, 3 secret),
 *   u8 key length, u16 value length, key (ASCII), value.
 */
import { crc32 } from '../../sdk/util/crc32';
import { asciiDecode, copyBytes, utf8Decode, utf8Encode } from '../../sdk/util/bytes';
import { eraseSectors, type BlockDevice } from './block';
import { ConfigError } from './config-errors';

export const CONFIG_MAGIC = [0x53, 0x43, 0x46, 0x47]; // "SCFG"
export const CONFIG_VERSION = 1;
export const CONFIG_HEADER = 32;
/** Bytes of one copy's area, header included: the store's total cap, the same on every board. */
export const CONFIG_AREA_BYTES = 8192;
export const CONFIG_MAX_DATA = CONFIG_AREA_BYTES - CONFIG_HEADER;
export const CONFIG_MAX_KEY = 48;
export const CONFIG_MAX_SETTING = 1024;
export const CONFIG_MAX_FILE = 4096;
const ENTRY_HEAD = 4;

export type ConfigKind = 'setting' | 'file' | 'secret';
const KINDS: ConfigKind[] = ['setting', 'file', 'secret']; // on flash: index + 1

type FieldType = 'magic' | 'u16' | 'u32' | 'zero' | 'crc';
interface Field { name: string; type: FieldType; size: number }

export const CONFIG_HEADER_FIELDS: Field[] = [
  { name: 'magic', type: 'magic', size: 4 },
  { name: 'version', type: 'u16', size: 2 },
  { name: 'headerSize', type: 'u16', size: 2 },
  { name: 'seq', type: 'u32', size: 4 },
  { name: 'dataLength', type: 'u32', size: 4 },
  { name: 'count', type: 'u16', size: 2 },
  { name: 'zero1', type: 'zero', size: 2 },
  { name: 'dataCrc', type: 'u32', size: 4 },
  { name: 'zero2', type: 'zero', size: 4 },
  { name: 'headerCrc', type: 'crc', size: 4 },
];

(function checkTable() {
  let n = 0;
  for (let i = 0; i < CONFIG_HEADER_FIELDS.length; i++) n += CONFIG_HEADER_FIELDS[i].size;
  if (n !== CONFIG_HEADER) throw new Error('config header table adds up to ' + n + ', not ' + CONFIG_HEADER);
})();

export interface ConfigEntry { kind: ConfigKind; key: string; value: Uint8Array }

/** One decoded copy. */
export interface ConfigCopy { seq: number; entries: ConfigEntry[] }

const KEY_CHARS = /^[a-z0-9][a-z0-9._-]*$/;

/** Throws E_CONFIG_KEY unless `key` is a valid key or file/secret name. */
export function checkKey(key: unknown): string {
  if (typeof key !== 'string' || key.length < 1 || key.length > CONFIG_MAX_KEY || !KEY_CHARS.test(key)) {
    const shown = typeof key === 'string' ? JSON.stringify(key.length > 60 ? key.slice(0, 60) + '…' : key) : typeof key;
    throw new ConfigError('E_CONFIG_KEY', 'config key ' + shown + ' is not a valid key');
  }
  return key;
}

/** The value cap of a kind, in bytes. */
export function valueCap(kind: ConfigKind): number {
  return kind === 'setting' ? CONFIG_MAX_SETTING : CONFIG_MAX_FILE;
}

function rd(b: Uint8Array, o: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + b[o + i];
  return v;
}
function wr(b: Uint8Array, o: number, size: number, v: number): void {
  for (let i = 0; i < size; i++) {
    b[o + i] = v & 255;
    v = Math.floor(v / 256);
  }
}

function compareEntries(a: { kind: ConfigKind; key: string }, b: { kind: ConfigKind; key: string }): number {
  const k = KINDS.indexOf(a.kind) - KINDS.indexOf(b.kind);
  if (k !== 0) return k;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** Bytes the entries take in a copy's data. */
export function dataLength(entries: ConfigEntry[]): number {
  let n = 0;
  for (let i = 0; i < entries.length; i++) n += ENTRY_HEAD + entries[i].key.length + entries[i].value.length;
  return n;
}

/** Encode one copy (header + data, unpadded). Entries are sorted; caps are checked. */
export function encodeConfig(c: ConfigCopy): Uint8Array {
  const entries = c.entries.slice().sort(compareEntries);
  for (let i = 0; i < entries.length; i++) {
    checkKey(entries[i].key);
    if (entries[i].value.length > valueCap(entries[i].kind)) {
      throw new ConfigError('E_CONFIG_TOO_LARGE', entries[i].kind + ' ' + entries[i].key + ' is ' + entries[i].value.length + ' bytes, over ' + valueCap(entries[i].kind));
    }
    if (i > 0 && compareEntries(entries[i - 1], entries[i]) === 0) throw new ConfigError('E_CONFIG_KEY', entries[i].kind + ' ' + entries[i].key + ' appears twice');
  }
  const len = dataLength(entries);
  if (len > CONFIG_MAX_DATA) throw new ConfigError('E_CONFIG_FULL', 'the config store would hold ' + len + ' bytes, over its cap of ' + CONFIG_MAX_DATA);
  const b = new Uint8Array(CONFIG_HEADER + len);
  let o = CONFIG_HEADER;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    b[o] = KINDS.indexOf(e.kind) + 1;
    b[o + 1] = e.key.length;
    wr(b, o + 2, 2, e.value.length);
    for (let k = 0; k < e.key.length; k++) b[o + ENTRY_HEAD + k] = e.key.charCodeAt(k);
    b.set(e.value, o + ENTRY_HEAD + e.key.length);
    o += ENTRY_HEAD + e.key.length + e.value.length;
  }
  const v: Record<string, number> = {
    version: CONFIG_VERSION, headerSize: CONFIG_HEADER, seq: c.seq >>> 0, dataLength: len, count: entries.length,
    dataCrc: crc32(b.subarray(CONFIG_HEADER)),
  };
  o = 0;
  for (let i = 0; i < CONFIG_HEADER_FIELDS.length; i++) {
    const f = CONFIG_HEADER_FIELDS[i];
    switch (f.type) {
      case 'magic': b.set(CONFIG_MAGIC, o); break;
      case 'u16': case 'u32': wr(b, o, f.size, v[f.name]); break;
      case 'zero': break;
      case 'crc': wr(b, o, 4, crc32(b.subarray(0, o))); break;
    }
    o += f.size;
  }
  return b;
}

/**
 * Decode one copy from the bytes of its area; null unless it is an intact copy of a version
 * we understand with canonical contents (sorted, unique, valid keys, within every cap).
 */
export function decodeConfig(b: Uint8Array): ConfigCopy | null {
  if (b.length < CONFIG_HEADER) return null;
  const v: Record<string, number> = {};
  let o = 0;
  for (let i = 0; i < CONFIG_HEADER_FIELDS.length; i++) {
    const f = CONFIG_HEADER_FIELDS[i];
    switch (f.type) {
      case 'magic': for (let k = 0; k < 4; k++) if (b[o + k] !== CONFIG_MAGIC[k]) return null; break;
      case 'u16': case 'u32': v[f.name] = rd(b, o, f.size); break;
      case 'zero': for (let k = 0; k < f.size; k++) if (b[o + k] !== 0) return null; break;
      case 'crc': if (rd(b, o, 4) !== crc32(b.subarray(0, o))) return null; break;
    }
    o += f.size;
  }
  if (v.version !== CONFIG_VERSION || v.headerSize !== CONFIG_HEADER) return null;
  const len = v.dataLength;
  if (len > CONFIG_MAX_DATA || CONFIG_HEADER + len > b.length) return null;
  const data = b.subarray(CONFIG_HEADER, CONFIG_HEADER + len);
  if (crc32(data) !== v.dataCrc) return null;
  const entries: ConfigEntry[] = [];
  o = 0;
  for (let i = 0; i < v.count; i++) {
    if (o + ENTRY_HEAD > len) return null;
    const kind = KINDS[data[o] - 1];
    const kl = data[o + 1];
    const vl = rd(data, o + 2, 2);
    if (!kind || o + ENTRY_HEAD + kl + vl > len || vl > valueCap(kind)) return null;
    const key = asciiDecode(data.subarray(o + ENTRY_HEAD, o + ENTRY_HEAD + kl));
    if (key === null || kl < 1 || kl > CONFIG_MAX_KEY || !KEY_CHARS.test(key)) return null;
    const e: ConfigEntry = { kind, key, value: copyBytes(data, o + ENTRY_HEAD + kl, o + ENTRY_HEAD + kl + vl) };
    if (entries.length && compareEntries(entries[entries.length - 1], e) >= 0) return null;
    entries.push(e);
    o += ENTRY_HEAD + kl + vl;
  }
  if (o !== len) return null;
  return { seq: v.seq, entries };
}

/** True when `a` is a later sequence number than `b` (serial arithmetic: seq wraps at 2^32). */
export function seqNewer(a: number, b: number): boolean {
  const d = (a - b) >>> 0;
  return d !== 0 && d < 0x80000000;
}

export interface ConfigArea { first: number; count: number }

/** Sectors one copy's area takes on a device with this sector size. */
export function configSectors(sectorSize: number): number {
  return Math.ceil(CONFIG_AREA_BYTES / sectorSize);
}

/**
 * The two config areas in a state partition: the last `configSectors` sectors of each half,
 * after the root chain area of that half (state copy, chain area, config area). On a medium
 * that erases blocks larger than a sector (block.ts eraseSectors) each area starts on its own
 * erase block, and the state copy and the chain area keep whole erase blocks, so rewriting one
 * area never erases another (on sector-atomic media e = 1: the layout of every earlier release).
 * Null when the partition is too small (each half must keep the state copy's block and at least
 * as many chain sectors as config sectors, and one erase block).
 */
export function stateConfigAreas(dev: BlockDevice): [ConfigArea, ConfigArea] | null {
  const n = configSectors(dev.sectorSize);
  const e = eraseSectors(dev);
  const span = Math.ceil(n / e) * e;
  const half = Math.floor(dev.sectorCount / 2);
  if (half < e + span + Math.max(n, e)) return null;
  return [{ first: half - span, count: n }, { first: dev.sectorCount - span, count: n }];
}

/** The two areas of a standalone config file (Node): one after the other. */
export function fileConfigAreas(sectorSize: number): [ConfigArea, ConfigArea] {
  const n = configSectors(sectorSize);
  return [{ first: 0, count: n }, { first: n, count: n }];
}

export interface ConfigRead {
  copy: ConfigCopy | null; // the newest valid copy; null: none (a fresh store is empty)
  newest: number; // -1 if none
  /** Copies that hold something other than erased flash yet do not decode: torn or corrupt. */
  damaged: [boolean, boolean];
}

function blank(b: Uint8Array): boolean {
  const x = b[0];
  if (x !== 0 && x !== 0xff) return false;
  for (let i = 0; i < b.length; i++) if (b[i] !== x) return false;
  return true;
}

export function readConfig(dev: BlockDevice, areas: [ConfigArea, ConfigArea]): ConfigRead {
  const raw = [dev.read(areas[0].first, areas[0].count), dev.read(areas[1].first, areas[1].count)];
  const c0 = decodeConfig(raw[0]);
  const c1 = decodeConfig(raw[1]);
  let newest = -1;
  if (c0 && c1) newest = seqNewer(c1.seq, c0.seq) ? 1 : 0;
  else if (c0) newest = 0;
  else if (c1) newest = 1;
  return {
    copy: newest === 0 ? c0 : newest === 1 ? c1 : null,
    newest,
    damaged: [!c0 && !blank(raw[0].subarray(0, CONFIG_HEADER)), !c1 && !blank(raw[1].subarray(0, CONFIG_HEADER))],
  };
}

/**
 * The only writer: `entries` with seq = newest + 1 (wrapping) into the area not holding the
 * newest copy, then a flush. Every cap is checked before the first sector is written.
 */
export function writeConfig(dev: BlockDevice, areas: [ConfigArea, ConfigArea], prev: ConfigRead, entries: ConfigEntry[]): ConfigRead {
  const seq = ((prev.copy ? prev.copy.seq : 0) + 1) >>> 0;
  const target = prev.newest === 0 ? 1 : 0;
  const bytes = encodeConfig({ seq, entries });
  const area = areas[target];
  const sectors = Math.ceil(bytes.length / dev.sectorSize);
  if (sectors > area.count) throw new ConfigError('E_CONFIG_FULL', 'the config store needs ' + sectors + ' sectors, its area has ' + area.count);
  const buf = new Uint8Array(sectors * dev.sectorSize);
  buf.set(bytes);
  dev.write(area.first, buf);
  dev.flush();
  const damaged: [boolean, boolean] = [prev.damaged[0], prev.damaged[1]];
  damaged[target] = false;
  return { copy: decodeConfig(buf), newest: target, damaged };
}

function toBytes(kind: ConfigKind, key: string, value: unknown): Uint8Array {
  if (typeof value === 'string') return utf8Encode(value);
  if (kind !== 'setting' && value instanceof Uint8Array) return value;
  throw new ConfigError('E_CONFIG_VALUE', 'the value of ' + kind + ' ' + key + ' is ' + (value === null ? 'null' : typeof value) + ', not a string');
}

/**
 * The store as the app uses it, over one device and its two areas. Reads the flash once, then
 * serves from memory; every change is written (and flushed) before the call returns.
 */
export class ConfigStore {
  private readonly dev: BlockDevice;
  private readonly areas: [ConfigArea, ConfigArea];
  private r: ConfigRead;

  constructor(dev: BlockDevice, areas: [ConfigArea, ConfigArea]) {
    this.dev = dev;
    this.areas = areas;
    this.r = readConfig(dev, areas);
  }

  /** The store in a board's state partition; E_CONFIG_NO_STORE when it is too small. */
  static inStatePartition(dev: BlockDevice): ConfigStore {
    const areas = stateConfigAreas(dev);
    if (!areas) throw new ConfigError('E_CONFIG_NO_STORE', 'the state partition has ' + dev.sectorCount + ' sectors, too few for the config store');
    return new ConfigStore(dev, areas);
  }

  /** Which copies were found damaged when the store was read (for a boot[CONFIG] line). */
  damaged(): [boolean, boolean] {
    return [this.r.damaged[0], this.r.damaged[1]];
  }

  seq(): number {
    return this.r.copy ? this.r.copy.seq : 0;
  }

  entries(): ConfigEntry[] {
    return this.r.copy ? this.r.copy.entries.slice() : [];
  }

  /** Bytes used of CONFIG_MAX_DATA. */
  used(): number {
    return dataLength(this.entries());
  }

  private find(kind: ConfigKind, key: string): ConfigEntry | null {
    const all = this.entries();
    for (let i = 0; i < all.length; i++) if (all[i].kind === kind && all[i].key === key) return all[i];
    return null;
  }

  getBytes(kind: ConfigKind, key: string): Uint8Array | null {
    const e = this.find(kind, checkKey(key));
    return e ? e.value : null;
  }

  /** A setting as a string, or undefined. */
  get(key: string): string | undefined {
    const b = this.getBytes('setting', key);
    if (!b) return undefined;
    const s = utf8Decode(b);
    return s === null ? undefined : s;
  }

  keys(kind: ConfigKind = 'setting'): string[] {
    const out: string[] = [];
    const all = this.entries();
    for (let i = 0; i < all.length; i++) if (all[i].kind === kind) out.push(all[i].key);
    return out;
  }

  /** A provisioned file or secret as text; E_CONFIG_MISSING when absent. */
  text(kind: 'file' | 'secret', name: string): string {
    const b = this.getBytes(kind, name);
    const s = b ? utf8Decode(b) : null;
    if (s === null) throw new ConfigError('E_CONFIG_MISSING', kind + ' ' + name + (b ? ' is not UTF-8 text' : ' is not provisioned on this device'));
    return s;
  }

  set(key: string, value: unknown): void {
    this.put('setting', key, value);
  }

  put(kind: ConfigKind, key: string, value: unknown): void {
    checkKey(key);
    const bytes = toBytes(kind, key, value);
    if (bytes.length > valueCap(kind)) throw new ConfigError('E_CONFIG_TOO_LARGE', kind + ' ' + key + ' is ' + bytes.length + ' bytes, over ' + valueCap(kind));
    const next = this.entries().filter(function (e) { return !(e.kind === kind && e.key === key); });
    next.push({ kind, key, value: bytes });
    this.commit(next);
  }

  /** Add or replace several entries in one write (provisioning): all or nothing. */
  putAll(list: ConfigEntry[]): void {
    let next = this.entries();
    for (let i = 0; i < list.length; i++) {
      const e = list[i];
      checkKey(e.key);
      const bytes = e.value instanceof Uint8Array ? e.value : toBytes(e.kind, e.key, e.value);
      if (bytes.length > valueCap(e.kind)) throw new ConfigError('E_CONFIG_TOO_LARGE', e.kind + ' ' + e.key + ' is ' + bytes.length + ' bytes, over ' + valueCap(e.kind));
      next = next.filter(function (x) { return !(x.kind === e.kind && x.key === e.key); });
      next.push({ kind: e.kind, key: e.key, value: bytes });
    }
    this.commit(next);
  }

  /** Remove a setting (or file/secret); false when it was not there (nothing is written). */
  delete(key: string, kind: ConfigKind = 'setting'): boolean {
    if (!this.find(kind, checkKey(key))) return false;
    this.commit(this.entries().filter(function (e) { return !(e.kind === kind && e.key === key); }));
    return true;
  }

  private commit(entries: ConfigEntry[]): void {
    this.r = writeConfig(this.dev, this.areas, this.r, entries);
  }
}
