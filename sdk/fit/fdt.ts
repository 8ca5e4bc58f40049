// Flattened device tree (DTB, version 17) encoder and decoder.
//
// Layout written (the same as dtc's, so a tree decoded from dtc output
// re-encodes to the same bytes):
//
//   header (40 bytes) | memory reservation block (8-aligned) |
//   structure block (4-aligned tokens) | strings block | zero padding
//
// Every multi-byte field is big-endian. The header is described once, in
// FDT_HEADER_FIELDS, and both encodeFdtHeader and decodeFdtHeader walk that table.

import { FdtError } from './errors';

export const FDT_MAGIC = 0xd00dfeed;
export const FDT_VERSION = 17;
export const FDT_LAST_COMP_VERSION = 16;

// Structure block tokens (devicetree specification 5.4.1).
export const FDT_BEGIN_NODE = 0x1;
export const FDT_END_NODE = 0x2;
export const FDT_PROP = 0x3;
export const FDT_NOP = 0x4;
export const FDT_END = 0x9;

export interface FdtHeader {
  magic: number;
  totalSize: number;
  offDtStruct: number;
  offDtStrings: number;
  offMemRsvmap: number;
  version: number;
  lastCompVersion: number;
  bootCpuidPhys: number;
  sizeDtStrings: number;
  sizeDtStruct: number;
}

interface U32Field {
  readonly name: keyof FdtHeader;
  readonly size: 4;
}

/** struct fdt_header, in order. Every field is a big-endian u32. */
export const FDT_HEADER_FIELDS: readonly U32Field[] = [
  { name: 'magic', size: 4 },
  { name: 'totalSize', size: 4 },
  { name: 'offDtStruct', size: 4 },
  { name: 'offDtStrings', size: 4 },
  { name: 'offMemRsvmap', size: 4 },
  { name: 'version', size: 4 },
  { name: 'lastCompVersion', size: 4 },
  { name: 'bootCpuidPhys', size: 4 },
  { name: 'sizeDtStrings', size: 4 },
  { name: 'sizeDtStruct', size: 4 },
];

export const FDT_HEADER_SIZE = 40;

/** struct fdt_reserve_entry: two big-endian u64. */
export const FDT_RESERVE_ENTRY_FIELDS = [
  { name: 'address', size: 8 },
  { name: 'size', size: 8 },
] as const;
export const FDT_RESERVE_ENTRY_SIZE = 16;

if (FDT_HEADER_FIELDS.reduce((n, f) => n + f.size, 0) !== FDT_HEADER_SIZE) {
  throw new Error('FDT_HEADER_FIELDS does not add up to FDT_HEADER_SIZE');
}
if (FDT_RESERVE_ENTRY_FIELDS.reduce((n, f) => n + f.size, 0) !== FDT_RESERVE_ENTRY_SIZE) {
  throw new Error('FDT_RESERVE_ENTRY_FIELDS does not add up to FDT_RESERVE_ENTRY_SIZE');
}

// ---------------------------------------------------------------------------
// Tree model

export interface FdtProperty {
  name: string;
  value: Uint8Array;
}

export interface FdtNode {
  /** Node name with unit address, e.g. "memory@40000000"; "" for the root. */
  name: string;
  properties: FdtProperty[];
  children: FdtNode[];
}

export interface FdtReservation {
  address: bigint;
  size: bigint;
}

export interface Fdt {
  root: FdtNode;
  reservations: FdtReservation[];
  bootCpuidPhys: number;
}

export function fdtNode(name: string, properties: FdtProperty[] = [], children: FdtNode[] = []): FdtNode {
  return { name, properties, children };
}

export function fdtProp(name: string, value: Uint8Array): FdtProperty {
  return { name, value };
}

export function newFdt(root: FdtNode): Fdt {
  return { root, reservations: [], bootCpuidPhys: 0 };
}

/** Finds a node by absolute path ("/", "/images/kernel"); undefined if absent. */
export function findNode(root: FdtNode, path: string): FdtNode | undefined {
  if (!path.startsWith('/')) return undefined;
  let node: FdtNode | undefined = root;
  for (const part of path.split('/').filter((p) => p !== '')) {
    node = node.children.find((c) => c.name === part);
    if (!node) return undefined;
  }
  return node;
}

export function getProp(node: FdtNode, name: string): Uint8Array | undefined {
  return node.properties.find((p) => p.name === name)?.value;
}

/** Replaces the property's value in place, or appends it after the existing ones. */
export function setProp(node: FdtNode, name: string, value: Uint8Array): void {
  const existing = node.properties.find((p) => p.name === name);
  if (existing) existing.value = value;
  else node.properties.push({ name, value });
}

/** Returns the named child, appending an empty one if there is none. */
export function ensureChild(node: FdtNode, name: string): FdtNode {
  let child = node.children.find((c) => c.name === name);
  if (!child) {
    child = fdtNode(name);
    node.children.push(child);
  }
  return child;
}

// ---------------------------------------------------------------------------
// Property value codecs (all big-endian, strings NUL-terminated)

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

export function u32Value(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new FdtError('E_FDT_BAD_VALUE', `value ${n} does not fit in a u32 cell — pass an integer 0..0xffffffff`);
  }
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n, false);
  return out;
}

export function u64Value(n: bigint): Uint8Array {
  if (n < 0n || n > 0xffffffffffffffffn) {
    throw new FdtError('E_FDT_BAD_VALUE', `value ${n} does not fit in a u64 — pass 0..2^64-1`);
  }
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, n, false);
  return out;
}

export function stringValue(s: string): Uint8Array {
  return stringListValue([s]);
}

export function stringListValue(list: readonly string[]): Uint8Array {
  const parts = list.map((s) => {
    if (s.includes('\0')) {
      throw new FdtError('E_FDT_BAD_VALUE', `string ${JSON.stringify(s)} contains NUL — remove it`);
    }
    return utf8.encode(s + '\0');
  });
  return concatBytes(parts);
}

export function readU32(value: Uint8Array, what = 'property'): number {
  if (value.length !== 4) {
    throw new FdtError('E_FDT_BAD_VALUE', `${what} is ${value.length} bytes, expected a 4-byte cell — fix the tree`);
  }
  return new DataView(value.buffer, value.byteOffset, 4).getUint32(0, false);
}

export function readU64(value: Uint8Array, what = 'property'): bigint {
  if (value.length !== 8) {
    throw new FdtError('E_FDT_BAD_VALUE', `${what} is ${value.length} bytes, expected 8 — fix the tree`);
  }
  return new DataView(value.buffer, value.byteOffset, 8).getBigUint64(0, false);
}

/** Reads a list of NUL-terminated strings; the value must end with NUL. */
export function readStringList(value: Uint8Array, what = 'property'): string[] {
  if (value.length === 0 || value[value.length - 1] !== 0) {
    throw new FdtError('E_FDT_BAD_VALUE', `${what} is not a NUL-terminated string list — fix the tree`);
  }
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    if (value[i] === 0) {
      try {
        out.push(utf8Strict.decode(value.subarray(start, i)));
      } catch (cause) {
        throw new FdtError('E_FDT_BAD_VALUE', `${what} is not valid UTF-8 — fix the tree`, { cause });
      }
      start = i + 1;
    }
  }
  return out;
}

/** Reads exactly one NUL-terminated string. */
export function readString(value: Uint8Array, what = 'property'): string {
  const list = readStringList(value, what);
  if (list.length !== 1) {
    throw new FdtError('E_FDT_BAD_VALUE', `${what} holds ${list.length} strings, expected one — fix the tree`);
  }
  return list[0]!;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * Each value as `cells` big-endian u32 cells (1: a u32, 2: a u64), back to back: a cell array
 * such as `reg` or a load address, whose cells per value #address-cells / #size-cells set.
 */
export function cellsValue(values: readonly (number | bigint)[], cells: 1 | 2): Uint8Array {
  return concatBytes(values.map((v) => (cells === 1 ? u32Value(Number(v)) : u64Value(BigInt(v)))));
}

// ---------------------------------------------------------------------------
// Property builders: fdtProp with the value encoded as above

/** `name = "s"`. */
export function stringProp(name: string, s: string): FdtProperty {
  return fdtProp(name, stringValue(s));
}

/** `name = "a", "b", ...`. */
export function stringListProp(name: string, list: readonly string[]): FdtProperty {
  return fdtProp(name, stringListValue(list));
}

/** `name = <n>`: one u32 cell. */
export function u32Prop(name: string, n: number): FdtProperty {
  return fdtProp(name, u32Value(n));
}

/** `name = /bits/ 64 <n>`: one u64 (two cells). */
export function u64Prop(name: string, n: bigint): FdtProperty {
  return fdtProp(name, u64Value(n));
}

// ---------------------------------------------------------------------------
// Header

export function encodeFdtHeader(header: FdtHeader): Uint8Array {
  const out = new Uint8Array(FDT_HEADER_SIZE);
  const view = new DataView(out.buffer);
  let off = 0;
  for (const field of FDT_HEADER_FIELDS) {
    view.setUint32(off, header[field.name], false);
    off += field.size;
  }
  return out;
}

/** Reads the header fields only; decodeFdt checks them. */
export function decodeFdtHeader(blob: Uint8Array): FdtHeader {
  if (blob.length < FDT_HEADER_SIZE) {
    throw new FdtError('E_FDT_TRUNCATED', `device tree is ${blob.length} bytes, shorter than its ${FDT_HEADER_SIZE}-byte header — pass the whole DTB`);
  }
  const view = new DataView(blob.buffer, blob.byteOffset, FDT_HEADER_SIZE);
  const header = {} as FdtHeader;
  let off = 0;
  for (const field of FDT_HEADER_FIELDS) {
    header[field.name] = view.getUint32(off, false);
    off += field.size;
  }
  return header;
}

// ---------------------------------------------------------------------------
// Encoder

// dtc's character sets (Documentation/dts-format.txt); a unit address follows '@'.
const NODE_NAME = /^[A-Za-z0-9,._+@-]+$/;
const PROP_NAME = /^[A-Za-z0-9,._+?#-]+$/;

export interface EncodeOptions {
  /** Pad the blob with zeros up to this total size (like QEMU's 1 MiB trees). */
  minTotalSize?: number;
  /** Extra zero bytes after the strings block (like `dtc -p`). */
  padding?: number;
}

/**
 * Strings block builder. A name already present — even as the tail of a
 * longer name — is reused, exactly as dtc does, so output matches dtc's.
 */
class StringTable {
  #text = '';

  offsetOf(name: string): number {
    const found = this.#text.indexOf(name + '\0');
    if (found >= 0) return found;
    const off = this.#text.length;
    this.#text += name + '\0';
    return off;
  }

  bytes(): Uint8Array {
    return utf8.encode(this.#text);
  }
}

class ByteWriter {
  #buf = new Uint8Array(1024);
  #len = 0;

  get length(): number {
    return this.#len;
  }

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  u32(n: number): void {
    this.#reserve(4);
    new DataView(this.#buf.buffer).setUint32(this.#len, n, false);
    this.#len += 4;
  }

  bytes(b: Uint8Array): void {
    this.#reserve(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }

  align4(): void {
    const pad = (4 - (this.#len % 4)) % 4;
    this.#reserve(pad);
    this.#buf.fill(0, this.#len, this.#len + pad);
    this.#len += pad;
  }

  result(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

function checkNodeForEncoding(node: FdtNode, isRoot: boolean, path: string): void {
  if (isRoot ? node.name !== '' : !NODE_NAME.test(node.name)) {
    throw new FdtError('E_FDT_BAD_NAME', `node name ${JSON.stringify(node.name)} at ${path} is not allowed — use letters, digits and ,._+@- (the root has an empty name)`);
  }
  const seenProps = new Set<string>();
  for (const p of node.properties) {
    if (!PROP_NAME.test(p.name)) {
      throw new FdtError('E_FDT_BAD_NAME', `property name ${JSON.stringify(p.name)} in ${path} is not allowed — use letters, digits and ,._+?#-`);
    }
    if (seenProps.has(p.name)) {
      throw new FdtError('E_FDT_BAD_STRUCTURE', `property ${p.name} appears twice in ${path} — keep one`);
    }
    seenProps.add(p.name);
  }
  const seenChildren = new Set<string>();
  for (const c of node.children) {
    if (seenChildren.has(c.name)) {
      throw new FdtError('E_FDT_BAD_STRUCTURE', `node ${c.name} appears twice in ${path} — keep one`);
    }
    seenChildren.add(c.name);
  }
}

export function encodeFdt(fdt: Fdt, options: EncodeOptions = {}): Uint8Array {
  const strings = new StringTable();
  const struct = new ByteWriter();

  const emit = (node: FdtNode, path: string, depth: number): void => {
    if (depth >= DEFAULT_MAX_DEPTH) {
      throw new FdtError('E_FDT_NESTING', `tree is deeper than ${DEFAULT_MAX_DEPTH} levels at ${path} — flatten it`);
    }
    checkNodeForEncoding(node, depth === 0, path);
    struct.u32(FDT_BEGIN_NODE);
    struct.bytes(utf8.encode(node.name + '\0'));
    struct.align4();
    for (const p of node.properties) {
      struct.u32(FDT_PROP);
      struct.u32(p.value.length);
      struct.u32(strings.offsetOf(p.name));
      struct.bytes(p.value);
      struct.align4();
    }
    for (const c of node.children) emit(c, path === '/' ? `/${c.name}` : `${path}/${c.name}`, depth + 1);
    struct.u32(FDT_END_NODE);
  };
  emit(fdt.root, '/', 0);
  struct.u32(FDT_END);

  const structBytes = struct.result();
  const stringBytes = strings.bytes();

  const rsv = new ByteWriter();
  for (const r of [...fdt.reservations, { address: 0n, size: 0n }]) {
    const entry = new Uint8Array(FDT_RESERVE_ENTRY_SIZE);
    const view = new DataView(entry.buffer);
    let off = 0;
    for (const field of FDT_RESERVE_ENTRY_FIELDS) {
      view.setBigUint64(off, r[field.name], false);
      off += field.size;
    }
    rsv.bytes(entry);
  }
  const rsvBytes = rsv.result();

  const offMemRsvmap = FDT_HEADER_SIZE; // already 8-aligned
  const offDtStruct = offMemRsvmap + rsvBytes.length;
  const offDtStrings = offDtStruct + structBytes.length;
  const used = offDtStrings + stringBytes.length;
  const totalSize = Math.max(used + (options.padding ?? 0), options.minTotalSize ?? 0);

  const header: FdtHeader = {
    magic: FDT_MAGIC,
    totalSize,
    offDtStruct,
    offDtStrings,
    offMemRsvmap,
    version: FDT_VERSION,
    lastCompVersion: FDT_LAST_COMP_VERSION,
    bootCpuidPhys: fdt.bootCpuidPhys,
    sizeDtStrings: stringBytes.length,
    sizeDtStruct: structBytes.length,
  };
  const out = new Uint8Array(totalSize);
  out.set(encodeFdtHeader(header), 0);
  out.set(rsvBytes, offMemRsvmap);
  out.set(structBytes, offDtStruct);
  out.set(stringBytes, offDtStrings);
  return out;
}

// ---------------------------------------------------------------------------
// Decoder

export const DEFAULT_MAX_DEPTH = 32; // U-Boot's fdt_region.c FDT_MAX_DEPTH
export const DEFAULT_MAX_TOTAL_SIZE = 0x10000000; // U-Boot's FIT_SIGNATURE_MAX_SIZE

export interface DecodeOptions {
  /** Refuse trees whose header claims more than this (default 256 MiB). */
  maxTotalSize?: number;
  maxDepth?: number;
  maxNodes?: number;
  maxProperties?: number;
  maxReservations?: number;
  /** Accept bytes after header.totalSize (e.g. a DTB read from a partition). */
  allowTrailingData?: boolean;
}

interface Limits {
  maxTotalSize: number;
  maxDepth: number;
  maxNodes: number;
  maxProperties: number;
  maxReservations: number;
  allowTrailingData: boolean;
}

function limits(o: DecodeOptions): Limits {
  return {
    maxTotalSize: o.maxTotalSize ?? DEFAULT_MAX_TOTAL_SIZE,
    maxDepth: o.maxDepth ?? DEFAULT_MAX_DEPTH,
    maxNodes: o.maxNodes ?? 100_000,
    maxProperties: o.maxProperties ?? 1_000_000,
    maxReservations: o.maxReservations ?? 1024,
    allowTrailingData: o.allowTrailingData ?? false,
  };
}

/** Decodes and checks the header against the blob; returns it. */
export function checkFdtHeader(blob: Uint8Array, options: DecodeOptions = {}): FdtHeader {
  const lim = limits(options);
  const h = decodeFdtHeader(blob);
  if (h.magic !== FDT_MAGIC) {
    throw new FdtError('E_FDT_BAD_MAGIC', `not a device tree: magic is 0x${h.magic.toString(16).padStart(8, '0')}, expected 0xd00dfeed — pass a DTB/FIT file`);
  }
  if (h.version < FDT_VERSION || h.lastCompVersion > FDT_VERSION) {
    throw new FdtError('E_FDT_BAD_VERSION', `device tree version ${h.version} (last compatible ${h.lastCompVersion}) is not supported — rebuild it as version 17 with dtc`);
  }
  if (h.totalSize > lim.maxTotalSize) {
    throw new FdtError('E_FDT_TOO_LARGE', `device tree claims ${h.totalSize} bytes, more than the ${lim.maxTotalSize}-byte limit — check the file or raise maxTotalSize`);
  }
  if (h.totalSize < FDT_HEADER_SIZE) {
    throw new FdtError('E_FDT_BAD_OFFSET', `device tree totalsize ${h.totalSize} is smaller than its header — the file is corrupt`);
  }
  if (blob.length < h.totalSize) {
    throw new FdtError('E_FDT_TRUNCATED', `device tree is ${blob.length} bytes but its header says ${h.totalSize} — the file is truncated`);
  }
  if (blob.length > h.totalSize && !lim.allowTrailingData) {
    throw new FdtError('E_FDT_TRAILING_DATA', `device tree has ${blob.length - h.totalSize} bytes after its declared end — strip them or pass allowTrailingData`);
  }
  const inside = (off: number, size: number): boolean => off >= FDT_HEADER_SIZE && off + size <= h.totalSize;
  if (h.offMemRsvmap % 8 !== 0 || !inside(h.offMemRsvmap, FDT_RESERVE_ENTRY_SIZE)) {
    throw new FdtError('E_FDT_BAD_OFFSET', `memory reservation block offset ${h.offMemRsvmap} is misaligned or outside the tree — the file is corrupt`);
  }
  if (h.offDtStruct % 4 !== 0 || !inside(h.offDtStruct, h.sizeDtStruct)) {
    throw new FdtError('E_FDT_BAD_OFFSET', `structure block [${h.offDtStruct}, +${h.sizeDtStruct}) is misaligned or outside the tree — the file is corrupt`);
  }
  if (!inside(h.offDtStrings, h.sizeDtStrings)) {
    throw new FdtError('E_FDT_BAD_OFFSET', `strings block [${h.offDtStrings}, +${h.sizeDtStrings}) is outside the tree — the file is corrupt`);
  }
  if (h.offDtStruct < h.offDtStrings + h.sizeDtStrings && h.offDtStrings < h.offDtStruct + h.sizeDtStruct) {
    throw new FdtError('E_FDT_BAD_OFFSET', 'structure and strings blocks overlap — the file is corrupt');
  }
  return h;
}

export type FdtTag =
  | { kind: 'begin'; offset: number; next: number; name: string }
  | { kind: 'end_node'; offset: number; next: number }
  | { kind: 'prop'; offset: number; next: number; name: string; nameOffset: number; valueOffset: number; valueLength: number }
  | { kind: 'nop'; offset: number; next: number }
  | { kind: 'end'; offset: number; next: number };

function readCString(blob: Uint8Array, start: number, end: number, what: string): { text: string; next: number } {
  const nul = blob.indexOf(0, start);
  if (nul < 0 || nul >= end) {
    throw new FdtError('E_FDT_BAD_STRING', `${what} at offset ${start} is not NUL-terminated inside its block — the file is corrupt`);
  }
  let text: string;
  try {
    text = utf8Strict.decode(blob.subarray(start, nul));
  } catch (cause) {
    throw new FdtError('E_FDT_BAD_STRING', `${what} at offset ${start} is not valid UTF-8 — the file is corrupt`, { cause });
  }
  return { text, next: nul + 1 };
}

/**
 * Walks the structure block token by token (offsets relative to its start,
 * like libfdt's fdt_next_tag). Each token is bounds-checked; nesting is not —
 * decodeFdt and fdtFindRegions check that themselves.
 */
export function* walkFdtTags(blob: Uint8Array, h: FdtHeader): Generator<FdtTag> {
  const base = h.offDtStruct;
  const end = base + h.sizeDtStruct;
  const strEnd = h.offDtStrings + h.sizeDtStrings;
  const view = new DataView(blob.buffer, blob.byteOffset, blob.length);
  const align4 = (n: number): number => (n + 3) & ~3;
  let off = 0;
  for (;;) {
    if (base + off + 4 > end) {
      throw new FdtError('E_FDT_TRUNCATED', `structure block ends at offset ${off} without an FDT_END token — the file is truncated`);
    }
    const token = view.getUint32(base + off, false);
    switch (token) {
      case FDT_BEGIN_NODE: {
        const { text, next } = readCString(blob, base + off + 4, end, 'node name');
        const nextOff = align4(next - base);
        if (base + nextOff > end) throw new FdtError('E_FDT_TRUNCATED', `node ${JSON.stringify(text)} runs past the structure block — the file is truncated`);
        yield { kind: 'begin', offset: off, next: nextOff, name: text };
        off = nextOff;
        break;
      }
      case FDT_PROP: {
        if (base + off + 12 > end) throw new FdtError('E_FDT_TRUNCATED', `property header at offset ${off} runs past the structure block — the file is truncated`);
        const len = view.getUint32(base + off + 4, false);
        const nameOff = view.getUint32(base + off + 8, false);
        const valueOffset = base + off + 12;
        if (valueOffset + len > end) {
          throw new FdtError('E_FDT_TRUNCATED', `property value at offset ${off} (${len} bytes) runs past the structure block — the file is truncated`);
        }
        if (nameOff >= h.sizeDtStrings) {
          throw new FdtError('E_FDT_BAD_OFFSET', `property name offset ${nameOff} is outside the ${h.sizeDtStrings}-byte strings block — the file is corrupt`);
        }
        const { text } = readCString(blob, h.offDtStrings + nameOff, strEnd, 'property name');
        const nextOff = align4(off + 12 + len);
        if (base + nextOff > end) throw new FdtError('E_FDT_TRUNCATED', `property ${text} runs past the structure block — the file is truncated`);
        yield { kind: 'prop', offset: off, next: nextOff, name: text, nameOffset: nameOff, valueOffset, valueLength: len };
        off = nextOff;
        break;
      }
      case FDT_END_NODE:
        yield { kind: 'end_node', offset: off, next: off + 4 };
        off += 4;
        break;
      case FDT_NOP:
        yield { kind: 'nop', offset: off, next: off + 4 };
        off += 4;
        break;
      case FDT_END:
        yield { kind: 'end', offset: off, next: off + 4 };
        return;
      default:
        throw new FdtError('E_FDT_BAD_TOKEN', `unknown structure token 0x${token.toString(16)} at offset ${off} — the file is corrupt`);
    }
  }
}

function decodeReservations(blob: Uint8Array, h: FdtHeader, lim: Limits): FdtReservation[] {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.length);
  const out: FdtReservation[] = [];
  for (let off = h.offMemRsvmap; ; off += FDT_RESERVE_ENTRY_SIZE) {
    const overlapsBlock = (start: number, size: number): boolean => off < start + size && start < off + FDT_RESERVE_ENTRY_SIZE;
    if (off + FDT_RESERVE_ENTRY_SIZE > h.totalSize || overlapsBlock(h.offDtStruct, h.sizeDtStruct) || overlapsBlock(h.offDtStrings, h.sizeDtStrings)) {
      throw new FdtError('E_FDT_BAD_OFFSET', 'memory reservation block has no terminating entry before the next block — the file is corrupt');
    }
    const entry = {} as FdtReservation;
    let fieldOff = off;
    for (const field of FDT_RESERVE_ENTRY_FIELDS) {
      entry[field.name] = view.getBigUint64(fieldOff, false);
      fieldOff += field.size;
    }
    if (entry.address === 0n && entry.size === 0n) return out;
    if (out.length >= lim.maxReservations) {
      throw new FdtError('E_FDT_LIMIT', `more than ${lim.maxReservations} memory reservations — the file is corrupt or raise maxReservations`);
    }
    out.push(entry);
  }
}

export function decodeFdt(blob: Uint8Array, options: DecodeOptions = {}): Fdt {
  const lim = limits(options);
  const h = checkFdtHeader(blob, options);
  const reservations = decodeReservations(blob, h, lim);

  let root: FdtNode | undefined;
  const stack: FdtNode[] = [];
  let nodes = 0;
  let props = 0;
  let sawEnd = false;
  for (const tag of walkFdtTags(blob, h)) {
    const parent = stack[stack.length - 1];
    switch (tag.kind) {
      case 'begin': {
        if (!parent && root) {
          throw new FdtError('E_FDT_BAD_STRUCTURE', 'device tree has a second root node — the file is corrupt');
        }
        if (stack.length >= lim.maxDepth) {
          throw new FdtError('E_FDT_NESTING', `nodes nest deeper than ${lim.maxDepth} levels — the file is corrupt or raise maxDepth`);
        }
        if (++nodes > lim.maxNodes) {
          throw new FdtError('E_FDT_LIMIT', `more than ${lim.maxNodes} nodes — the file is corrupt or raise maxNodes`);
        }
        const isRoot = !parent;
        if (isRoot ? tag.name !== '' : tag.name === '' || tag.name.includes('/')) {
          throw new FdtError('E_FDT_BAD_NAME', `node name ${JSON.stringify(tag.name)} at offset ${tag.offset} is not allowed here — the file is corrupt`);
        }
        const node = fdtNode(tag.name);
        if (parent) {
          if (parent.children.some((c) => c.name === node.name)) {
            throw new FdtError('E_FDT_BAD_STRUCTURE', `node ${tag.name} appears twice under the same parent — the file is corrupt`);
          }
          parent.children.push(node);
        } else {
          root = node;
        }
        stack.push(node);
        break;
      }
      case 'prop': {
        if (!parent) {
          throw new FdtError('E_FDT_BAD_STRUCTURE', `property ${tag.name} at offset ${tag.offset} is outside any node — the file is corrupt`);
        }
        if (parent.children.length > 0) {
          throw new FdtError('E_FDT_BAD_STRUCTURE', `property ${tag.name} follows a subnode in node ${JSON.stringify(parent.name)} — the file is corrupt`);
        }
        if (parent.properties.some((p) => p.name === tag.name)) {
          throw new FdtError('E_FDT_BAD_STRUCTURE', `property ${tag.name} appears twice in node ${JSON.stringify(parent.name)} — the file is corrupt`);
        }
        if (++props > lim.maxProperties) {
          throw new FdtError('E_FDT_LIMIT', `more than ${lim.maxProperties} properties — the file is corrupt or raise maxProperties`);
        }
        parent.properties.push(fdtProp(tag.name, blob.slice(tag.valueOffset, tag.valueOffset + tag.valueLength)));
        break;
      }
      case 'end_node':
        if (!parent) {
          throw new FdtError('E_FDT_NESTING', `FDT_END_NODE at offset ${tag.offset} closes no node — the file is corrupt`);
        }
        stack.pop();
        break;
      case 'nop':
        break;
      case 'end':
        if (stack.length > 0) {
          throw new FdtError('E_FDT_NESTING', `FDT_END at offset ${tag.offset} with ${stack.length} node(s) still open — the file is truncated or corrupt`);
        }
        if (!root) {
          throw new FdtError('E_FDT_BAD_STRUCTURE', 'device tree has no root node — the file is corrupt');
        }
        if (tag.next !== h.sizeDtStruct) {
          throw new FdtError('E_FDT_BAD_STRUCTURE', `FDT_END at offset ${tag.offset} is not the end of the ${h.sizeDtStruct}-byte structure block — the file is corrupt`);
        }
        sawEnd = true;
        break;
    }
  }
  if (!sawEnd || !root) {
    throw new FdtError('E_FDT_TRUNCATED', 'structure block has no FDT_END token — the file is truncated');
  }
  return { root, reservations, bootCpuidPhys: h.bootCpuidPhys };
}
