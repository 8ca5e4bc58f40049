/**
 * GUID Partition Table (UEFI 2.10 §5.3): protective MBR in LBA 0, primary header in LBA 1, the
 * entry array right after it, and the backup array and header at the end of the disk. All
 * integers little-endian; GUIDs in the mixed-endian form UEFI uses (first three fields LE).
 *
 * Deterministic: the disk and partition GUIDs are derived from a caller-given seed (SHA-256),
 * so the same inputs give the same table. Layout: docs/disk.md.
 */
import { createHash } from 'node:crypto';
import { crc32 } from '../util/crc32';
import { DiskError } from './errors';

export const GPT_SIGNATURE = 'EFI PART';
export const GPT_REVISION = 0x00010000;
export const GPT_HEADER_SIZE = 92;
export const GPT_ENTRY_COUNT = 128;
export const GPT_ENTRY_SIZE = 128;
export const GPT_NAME_UNITS = 36; // UTF-16 code units in an entry's name
export const MBR_PROTECTIVE_TYPE = 0xee;

/** Header fields: [name, offset, bytes]. The table must add up to GPT_HEADER_SIZE. */
export const GPT_HEADER_FIELDS = [
  ['signature', 0, 8],
  ['revision', 8, 4],
  ['headerSize', 12, 4],
  ['headerCrc32', 16, 4],
  ['reserved', 20, 4],
  ['myLba', 24, 8],
  ['alternateLba', 32, 8],
  ['firstUsableLba', 40, 8],
  ['lastUsableLba', 48, 8],
  ['diskGuid', 56, 16],
  ['entriesLba', 72, 8],
  ['entryCount', 80, 4],
  ['entrySize', 84, 4],
  ['entriesCrc32', 88, 4],
] as const;
/** Entry fields: [name, offset, bytes]; must add up to GPT_ENTRY_SIZE. */
export const GPT_ENTRY_FIELDS = [
  ['typeGuid', 0, 16],
  ['uniqueGuid', 16, 16],
  ['firstLba', 32, 8],
  ['lastLba', 40, 8], // inclusive
  ['attributes', 48, 8],
  ['name', 56, GPT_NAME_UNITS * 2], // UTF-16LE, NUL-padded
] as const;
for (const [table, size] of [[GPT_HEADER_FIELDS, GPT_HEADER_SIZE], [GPT_ENTRY_FIELDS, GPT_ENTRY_SIZE]] as const) {
  const last = table[table.length - 1]!;
  if (last[1] + last[2] !== size) throw new Error('internal: GPT field table does not add up');
}

/**
 * Partition type GUIDs for Signet's partitions (ours; no standard type fits a signed FIT, an
 * app-image slot or the boot state). Unknown names get the "Linux filesystem data" type.
 */
export const SIGNET_PARTITION_TYPES: Record<string, string> = {
  boot: '78C7D199-DAA1-436C-8B5B-189D34695803',
  slot_a: '649A0432-65FC-4A0F-8D9A-4DB5C43B3C75',
  slot_b: '649A0432-65FC-4A0F-8D9A-4DB5C43B3C75',
  state: '16607A77-EF06-4CE7-855F-EA6D4D41DB6E',
};
export const LINUX_DATA_TYPE = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

export interface GptPartition {
  name: string;
  /** Bytes from the start of the disk; a multiple of the sector size. */
  offset: number;
  size: number;
  typeGuid?: string;
}

export interface GptInput {
  diskBytes: number;
  sectorSize: number;
  partitions: GptPartition[];
  /** Bytes the GUIDs are derived from (e.g. a digest of the disk's contents). */
  seed: Uint8Array;
}

export interface GptLayout {
  sectorSize: number;
  totalSectors: number;
  firstUsableLba: number;
  lastUsableLba: number;
  diskGuid: string;
  partitions: (Required<GptPartition> & { uniqueGuid: string; firstLba: number; lastLba: number })[];
}

/** The byte regions to write: protective MBR + primary GPT at 0, backup GPT at the end. */
export interface GptWrite {
  primary: { offset: number; bytes: Uint8Array };
  backup: { offset: number; bytes: Uint8Array };
  layout: GptLayout;
}

const GUID_RE = /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/i;

export function guidToBytes(guid: string): Uint8Array {
  if (!GUID_RE.test(guid)) throw new DiskError('E_DISK_LAYOUT', `"${guid}" is not a GUID`, 'write GUIDs as 8-4-4-4-12 hex digits');
  const hex = guid.replace(/-/g, '');
  const b = Uint8Array.from(Buffer.from(hex, 'hex'));
  // Data1 (4), Data2 (2), Data3 (2) are little-endian; Data4 (8) is a byte string.
  return Uint8Array.from([b[3]!, b[2]!, b[1]!, b[0]!, b[5]!, b[4]!, b[7]!, b[6]!, ...b.subarray(8)]);
}

export function bytesToGuid(b: Uint8Array): string {
  const h = (xs: number[]) => xs.map((x) => x.toString(16).padStart(2, '0')).join('').toUpperCase();
  return `${h([b[3]!, b[2]!, b[1]!, b[0]!])}-${h([b[5]!, b[4]!])}-${h([b[7]!, b[6]!])}-${h([...b.subarray(8, 10)])}-${h([...b.subarray(10, 16)])}`;
}

/** A GUID from SHA-256(seed ‖ label), marked RFC 9562 version 8 (custom), variant 10. */
export function derivedGuid(seed: Uint8Array, label: string): string {
  const d = createHash('sha256').update(seed).update('\0signet-gpt\0').update(label).digest();
  d[6] = (d[6]! & 0x0f) | 0x80;
  d[8] = (d[8]! & 0x3f) | 0x80;
  const h = d.subarray(0, 16).toString('hex').toUpperCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function entrySectors(sectorSize: number): number {
  return Math.ceil((GPT_ENTRY_COUNT * GPT_ENTRY_SIZE) / sectorSize);
}

/** Where partitions may go on a disk of this size, and the GUIDs they get. */
export function gptLayout(input: GptInput): GptLayout {
  const ss = input.sectorSize;
  if (![512, 1024, 2048, 4096].includes(ss)) throw new DiskError('E_DISK_LAYOUT', `sector size ${ss} cannot carry a GPT`, 'use 512 or 4096-byte blocks');
  if (input.diskBytes % ss) throw new DiskError('E_DISK_LAYOUT', `disk size ${input.diskBytes} is not a multiple of the sector size ${ss}`, 'fix flash.size in the board file');
  const totalSectors = input.diskBytes / ss;
  const es = entrySectors(ss);
  const firstUsableLba = 2 + es;
  const lastUsableLba = totalSectors - 2 - es;
  if (lastUsableLba <= firstUsableLba) throw new DiskError('E_DISK_LAYOUT', `a disk of ${input.diskBytes} bytes is too small for a GPT`, 'make flash.size larger');
  if (input.partitions.length > GPT_ENTRY_COUNT) throw new DiskError('E_DISK_LAYOUT', `${input.partitions.length} partitions do not fit a GPT of ${GPT_ENTRY_COUNT} entries`, 'use fewer partitions');
  const sorted = [...input.partitions].sort((a, b) => a.offset - b.offset);
  const parts = sorted.map((p, i) => {
    if (p.offset % ss || p.size % ss || p.size <= 0) {
      throw new DiskError('E_DISK_LAYOUT', `partition ${p.name} (offset ${p.offset}, size ${p.size}) is not aligned to ${ss}-byte sectors`, 'fix flash.partitions in the board file');
    }
    const firstLba = p.offset / ss;
    const lastLba = firstLba + p.size / ss - 1;
    if (firstLba < firstUsableLba || lastLba > lastUsableLba) {
      throw new DiskError('E_DISK_LAYOUT', `partition ${p.name} (sectors ${firstLba}..${lastLba}) lies outside the GPT's usable sectors ${firstUsableLba}..${lastUsableLba}`, `start partitions at ${firstUsableLba * ss} bytes or later and end them ${(totalSectors - lastUsableLba) * ss} bytes before the end`);
    }
    const prev = sorted[i - 1];
    if (prev && prev.offset + prev.size > p.offset) throw new DiskError('E_DISK_LAYOUT', `partition ${p.name} overlaps ${prev.name}`, 'fix flash.partitions in the board file');
    if (p.name.length > GPT_NAME_UNITS || !/^[\x20-\x7e]+$/.test(p.name)) throw new DiskError('E_DISK_LAYOUT', `partition name "${p.name}" is not 1-${GPT_NAME_UNITS} printable ASCII characters`, 'rename the partition');
    return {
      name: p.name,
      offset: p.offset,
      size: p.size,
      typeGuid: p.typeGuid ?? SIGNET_PARTITION_TYPES[p.name] ?? LINUX_DATA_TYPE,
      uniqueGuid: derivedGuid(input.seed, 'partition:' + p.name),
      firstLba,
      lastLba,
    };
  });
  return { sectorSize: ss, totalSectors, firstUsableLba, lastUsableLba, diskGuid: derivedGuid(input.seed, 'disk'), partitions: parts };
}

function entriesArray(layout: GptLayout): Uint8Array {
  const arr = new Uint8Array(entrySectors(layout.sectorSize) * layout.sectorSize);
  const v = new DataView(arr.buffer);
  layout.partitions.forEach((p, i) => {
    const o = i * GPT_ENTRY_SIZE;
    arr.set(guidToBytes(p.typeGuid), o);
    arr.set(guidToBytes(p.uniqueGuid), o + 16);
    v.setBigUint64(o + 32, BigInt(p.firstLba), true);
    v.setBigUint64(o + 40, BigInt(p.lastLba), true);
    v.setBigUint64(o + 48, 0n, true);
    for (let c = 0; c < p.name.length; c++) v.setUint16(o + 56 + 2 * c, p.name.charCodeAt(c), true);
  });
  return arr;
}

function header(layout: GptLayout, myLba: number, alternateLba: number, entriesLba: number, entriesCrc: number): Uint8Array {
  const h = new Uint8Array(layout.sectorSize);
  const v = new DataView(h.buffer);
  h.set(new TextEncoder().encode(GPT_SIGNATURE), 0);
  v.setUint32(8, GPT_REVISION, true);
  v.setUint32(12, GPT_HEADER_SIZE, true);
  v.setBigUint64(24, BigInt(myLba), true);
  v.setBigUint64(32, BigInt(alternateLba), true);
  v.setBigUint64(40, BigInt(layout.firstUsableLba), true);
  v.setBigUint64(48, BigInt(layout.lastUsableLba), true);
  h.set(guidToBytes(layout.diskGuid), 56);
  v.setBigUint64(72, BigInt(entriesLba), true);
  v.setUint32(80, GPT_ENTRY_COUNT, true);
  v.setUint32(84, GPT_ENTRY_SIZE, true);
  v.setUint32(88, entriesCrc, true);
  v.setUint32(16, crc32(h.subarray(0, GPT_HEADER_SIZE)), true); // computed with the field at 0
  return h;
}

function protectiveMbr(layout: GptLayout): Uint8Array {
  const m = new Uint8Array(layout.sectorSize);
  const v = new DataView(m.buffer);
  const o = 446; // first partition record
  m.set([0x00, 0x00, 0x02, 0x00, MBR_PROTECTIVE_TYPE, 0xff, 0xff, 0xff], o);
  v.setUint32(o + 8, 1, true);
  v.setUint32(o + 12, Math.min(layout.totalSectors - 1, 0xffffffff), true);
  m[510] = 0x55;
  m[511] = 0xaa;
  return m;
}

export function encodeGpt(input: GptInput): GptWrite {
  const layout = gptLayout(input);
  const ss = layout.sectorSize;
  const entries = entriesArray(layout);
  const entriesCrc = crc32(entries.subarray(0, GPT_ENTRY_COUNT * GPT_ENTRY_SIZE));
  const last = layout.totalSectors - 1;
  const backupEntriesLba = last - entrySectors(ss);
  const primary = new Uint8Array(ss * (2 + entrySectors(ss)));
  primary.set(protectiveMbr(layout), 0);
  primary.set(header(layout, 1, last, 2, entriesCrc), ss);
  primary.set(entries, 2 * ss);
  const backup = new Uint8Array(ss * (1 + entrySectors(ss)));
  backup.set(entries, 0);
  backup.set(header(layout, last, 1, backupEntriesLba, entriesCrc), entries.length);
  return { primary: { offset: 0, bytes: primary }, backup: { offset: backupEntriesLba * ss, bytes: backup }, layout };
}

export interface DecodedGpt {
  diskGuid: string;
  firstUsableLba: number;
  lastUsableLba: number;
  partitions: { name: string; typeGuid: string; uniqueGuid: string; offset: number; size: number }[];
}

/**
 * Reads the primary GPT from the first sectors of a disk (`read(offset, length)`), checking the
 * protective MBR, signature, revision, sizes and both CRCs.
 */
export function decodeGpt(read: (offset: number, length: number) => Uint8Array, sectorSize = 512): DecodedGpt {
  const bad = (why: string): never => {
    throw new DiskError('E_DISK_NOT_A_DISK', `no valid GPT: ${why}`, 'pass a disk image made by `signet disk`');
  };
  const mbr = read(0, sectorSize);
  if (mbr[510] !== 0x55 || mbr[511] !== 0xaa || mbr[446 + 4] !== MBR_PROTECTIVE_TYPE) bad('no protective MBR');
  const h = read(sectorSize, sectorSize);
  const v = new DataView(h.buffer, h.byteOffset, h.byteLength);
  if (new TextDecoder().decode(h.subarray(0, 8)) !== GPT_SIGNATURE) bad('no "EFI PART" signature in LBA 1');
  if (v.getUint32(8, true) !== GPT_REVISION || v.getUint32(12, true) !== GPT_HEADER_SIZE) bad('unsupported revision or header size');
  const copy = h.slice(0, GPT_HEADER_SIZE);
  new DataView(copy.buffer).setUint32(16, 0, true);
  if (crc32(copy) !== v.getUint32(16, true)) bad('header CRC mismatch');
  const count = v.getUint32(80, true);
  const size = v.getUint32(84, true);
  if (count > 1024 || size !== GPT_ENTRY_SIZE) bad('unsupported entry array');
  const entries = read(Number(v.getBigUint64(72, true)) * sectorSize, count * size);
  if (crc32(entries) !== v.getUint32(88, true)) bad('entry array CRC mismatch');
  const ev = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
  const partitions: DecodedGpt['partitions'] = [];
  for (let i = 0; i < count; i++) {
    const o = i * size;
    const type = entries.subarray(o, o + 16);
    if (type.every((b) => b === 0)) continue;
    let name = '';
    for (let c = 0; c < GPT_NAME_UNITS; c++) {
      const u = ev.getUint16(o + 56 + 2 * c, true);
      if (u === 0) break;
      name += String.fromCharCode(u);
    }
    const first = Number(ev.getBigUint64(o + 32, true));
    const lastLba = Number(ev.getBigUint64(o + 40, true));
    partitions.push({ name, typeGuid: bytesToGuid(type), uniqueGuid: bytesToGuid(entries.subarray(o + 16, o + 32)), offset: first * sectorSize, size: (lastLba - first + 1) * sectorSize });
  }
  return {
    diskGuid: bytesToGuid(h.subarray(56, 72)),
    firstUsableLba: Number(v.getBigUint64(40, true)),
    lastUsableLba: Number(v.getBigUint64(48, true)),
    partitions,
  };
}
