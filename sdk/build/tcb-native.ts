/**
 * Where the bytes of a static binary come from: the GNU ld link map (`-Wl,-Map=FILE`) names the
 * object or archive member behind every input section, and the ELF section headers of the
 * linked file say which output sections take file bytes when loaded (SHF_ALLOC, not NOBITS).
 * Summing input sections of those output sections by origin attributes the loadable bytes to
 * libraries exactly: what is left (alignment fill, linker stubs, sections the map does not
 * explain) is reported as `other`, never spread over the libraries.
 */
import { basename, dirname } from 'node:path';
import { TcbError } from './tcb-errors';

/** One input section as the link map lists it. */
export interface LinkMapInput {
  /** Output section it was placed in, e.g. ".text". */
  output: string;
  /** Input section name, e.g. ".text.uv_run" ("*fill*" for alignment padding). */
  section: string;
  address: number;
  size: number;
  /** The object file, `archive.a(member.o)`, or "" for fill and linker-made sections. */
  origin: string;
}

export interface LinkMap {
  /** Output sections in map order with the size the map gives them. */
  outputs: { name: string; address: number; size: number }[];
  inputs: LinkMapInput[];
}

const MAP_START = 'Linker script and memory map';
const HEX = '0x[0-9a-fA-F]+';
/** `.name 0xADDR 0xSIZE [origin]`: an output section at column 0, an input section indented by one space. */
const SECTION_WITH_SIZE = new RegExp(`^ ?(\\S+)?\\s+(${HEX})\\s+(${HEX})(?:\\s+(.*))?$`);
const NOT_SECTIONS = new Set(['LOAD', 'START', 'END', 'OUTPUT', 'OUTPUT_FORMAT', 'TARGET', 'SEARCH_DIR', 'INPUT', 'GROUP']);

function mapError(line: number, why: string): never {
  throw new TcbError('E_TCB_LINK_MAP', `link map line ${line}: ${why}`);
}

/**
 * Parses the memory map part of a GNU ld map file. A section name longer than ld's column
 * comes alone on its line, its address and size on the next; `(size before relaxing)` lines,
 * symbol lines (`0xADDR name`, no size) and `*(pattern)` lines carry no bytes and are skipped.
 */
export function parseLinkMap(text: string): LinkMap {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith(MAP_START));
  if (start < 0) throw new TcbError('E_TCB_LINK_MAP', `no "${MAP_START}" in the link map (GNU ld -Map output expected)`);
  const map: LinkMap = { outputs: [], inputs: [] };
  let output: string | undefined;
  let pending: { name: string; indented: boolean; line: number } | undefined;
  for (let i = start + 1; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw.trim() === '') {
      pending = undefined;
      continue;
    }
    const first = raw.split(/\s+/)[0]!;
    if (raw[0] !== ' ' && NOT_SECTIONS.has(first.replace(/\(.*/, ''))) {
      pending = undefined;
      continue;
    }
    const m = SECTION_WITH_SIZE.exec(raw);
    const indented = raw.startsWith(' ') && !raw.startsWith('  ');
    if (m && m[1] !== undefined && (raw[0] !== ' ' || indented)) {
      // A whole section line: name, address, size (and origin for an input).
      place(raw[0] !== ' ', m[1], Number.parseInt(m[2]!, 16), Number.parseInt(m[3]!, 16), m[4] ?? '', i + 1);
      pending = undefined;
    } else if (m && m[1] === undefined && pending) {
      // The address and size of the name on the line before.
      place(!pending.indented, pending.name, Number.parseInt(m[2]!, 16), Number.parseInt(m[3]!, 16), m[4] ?? '', pending.line);
      pending = undefined;
    } else if (!m && /^\s?\S+$/.test(raw) && !raw.trimStart().startsWith('*(') && (raw[0] !== ' ' || indented)) {
      // A name alone: an empty output section, or a long name wrapped onto the next line.
      pending = { name: raw.trim(), indented: raw[0] === ' ', line: i + 1 };
      if (!pending.indented) output = pending.name;
    } else {
      pending = undefined;
    }
  }
  return map;

  function place(isOutput: boolean, name: string, address: number, size: number, rest: string, line: number): void {
    if (!Number.isSafeInteger(size) || !Number.isSafeInteger(address)) mapError(line, `address or size of ${name} is out of range`);
    if (isOutput) {
      output = name;
      map.outputs.push({ name, address, size });
      return;
    }
    if (output === undefined) mapError(line, `input section ${name} comes before any output section`);
    if (/\(size before relaxing\)$/.test(rest)) return;
    // *fill* lines end with the fill pattern, not a file.
    const origin = name === '*fill*' ? '' : rest.trim();
    map.inputs.push({ output, section: name, address, size, origin: origin === 'linker stubs' ? '' : origin });
  }
}

/** An ELF section as its header describes it. */
export interface ElfSection {
  name: string;
  type: number;
  flags: number;
  size: number;
}

const SHT_NOBITS = 8;
const SHF_ALLOC = 2;

/** Section headers of an ELF file (32 or 64 bit, little or big endian); names from .shstrtab. */
export function elfSections(elf: Uint8Array): ElfSection[] {
  const bad = (why: string): never => {
    throw new TcbError('E_TCB_ELF', `not an ELF file the report can read: ${why}`);
  };
  if (elf.length < 52 || elf[0] !== 0x7f || elf[1] !== 0x45 || elf[2] !== 0x4c || elf[3] !== 0x46) bad('no ELF magic');
  const is64 = elf[4] === 2;
  const little = elf[5] === 1;
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const u16 = (o: number) => v.getUint16(o, little);
  const u32 = (o: number) => v.getUint32(o, little);
  const word = (o: number) => (is64 ? Number(v.getBigUint64(o, little)) : u32(o));
  const shoff = word(is64 ? 0x28 : 0x20);
  const shentsize = u16(is64 ? 0x3a : 0x2e);
  const shnum = u16(is64 ? 0x3c : 0x30);
  const shstrndx = u16(is64 ? 0x3e : 0x32);
  if (shnum === 0 || shoff + shnum * shentsize > elf.length || shstrndx >= shnum) bad('section header table outside the file');
  const raw = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    raw.push({
      nameOff: u32(o),
      type: u32(o + 4),
      flags: word(o + 8),
      offset: word(is64 ? o + 0x18 : o + 0x10),
      size: word(is64 ? o + 0x20 : o + 0x14),
    });
  }
  const strtab = raw[shstrndx]!;
  if (strtab.offset + strtab.size > elf.length) bad('.shstrtab outside the file');
  const dec = new TextDecoder();
  return raw.map((s) => {
    const from = strtab.offset + s.nameOff;
    let end = from;
    while (end < strtab.offset + strtab.size && elf[end] !== 0) end++;
    return { name: dec.decode(elf.subarray(from, end)), type: s.type, flags: s.flags, size: s.size };
  });
}

/** Sections that hold file bytes the loader maps: allocated and not NOBITS (.bss, .tbss). */
export function loadableSections(sections: readonly ElfSection[]): ElfSection[] {
  return sections.filter((s) => (s.flags & SHF_ALLOC) !== 0 && s.type !== SHT_NOBITS && s.size > 0);
}

/** What a library is made of, e.g. mbedtls: libmbedtls.a, libmbedx509.a, libmbedcrypto.a. */
export interface NativePart {
  library: string;
  bytes: number;
  /** Bytes per object or archive file (basename) that makes up the library. */
  members: Record<string, number>;
}

export interface NativeTcb {
  format: 'signet-native-tcb';
  version: 1;
  /** Loadable file bytes: the sum of allocated, file-backed sections. */
  loadableBytes: number;
  /** Size of the binary file. */
  fileBytes: number;
  /** Largest first; `other` last. Their bytes add up to loadableBytes. */
  parts: NativePart[];
}

/** The library an origin belongs to, by file; undefined: not known (counted as other). */
export type OriginClassifier = (origin: { file: string; member?: string }) => { library: string; member: string } | undefined;

/** glibc (x86_64's libm.a is a script naming libm-<version>.a and libmvec.a), libgcc and the C runtime objects as the compilers link them statically. */
export function toolchainLibrary(file: string): string | undefined {
  const b = basename(file);
  if (/^(libc|libm|libm-[\d.]+|libmvec|libpthread|libdl|librt|libresolv|libc_nonshared)\.a$/.test(b) || /^crt[1in]\.o$/.test(b) || b === 'Scrt1.o') return 'libc';
  if (/^libgcc(_eh)?\.a$/.test(b) || /^crt(begin|end)[ST]?\.o$/.test(b)) return 'libgcc';
  return undefined;
}

export const OTHER_PART = 'other';

/** `dir/lib.a(member.o)` → { file, member }; a plain object path → { file }. */
export function splitOrigin(origin: string): { file: string; member?: string } {
  const m = /^(.*\.a)\((.*)\)$/.exec(origin);
  return m ? { file: m[1]!, member: m[2]! } : { file: origin };
}

/**
 * Attributes the loadable bytes of a linked binary to libraries. `classify` names the project's
 * own inputs (objects, archives); the toolchain's are known by name; anything else is `other`.
 */
export function attributeNative(map: LinkMap, elf: Uint8Array, classify: OriginClassifier): NativeTcb {
  const loadable = loadableSections(elfSections(elf));
  const byOutput = new Map(loadable.map((s) => [s.name, s.size]));
  const parts = new Map<string, NativePart>();
  const add = (library: string, member: string, bytes: number) => {
    if (bytes === 0) return;
    let p = parts.get(library);
    if (!p) parts.set(library, (p = { library, bytes: 0, members: {} }));
    p.bytes += bytes;
    p.members[member] = (p.members[member] ?? 0) + bytes;
  };
  const outputs = new Map(map.outputs.map((o) => [o.name, o]));
  const owner = (input: LinkMapInput): { library: string; member: string } => {
    if (input.origin === '') return { library: OTHER_PART, member: input.section === '*fill*' ? 'alignment' : 'linker' };
    const o = splitOrigin(input.origin);
    const known = classify(o);
    if (known) return known;
    const tool = toolchainLibrary(o.file);
    return { library: tool ?? OTHER_PART, member: basename(o.file) };
  };
  for (const [name, size] of byOutput) {
    const out = outputs.get(name);
    if (!out) {
      add(OTHER_PART, 'unattributed', size);
      continue;
    }
    if (out.size !== size) throw new TcbError('E_TCB_LINK_MAP', `the link map gives ${name} ${out.size} bytes, the binary ${size}: the map is not from this link`);
    // Each byte of the output section goes to the input placed last at or before it (the first
    // listed, among inputs at one address). Merged string and constant pools are listed at
    // their size before duplicates went, so they run into what follows them or share an
    // address: summing sizes would count bytes twice.
    const end = out.address + size;
    const inputs = map.inputs.filter((i) => i.output === name && i.size > 0).map((input, order) => ({ input, order }));
    inputs.sort((x, y) => x.input.address - y.input.address || x.order - y.order);
    const nextStart: number[] = new Array(inputs.length);
    for (let i = inputs.length - 1, next = end; i >= 0; i--) {
      nextStart[i] = next;
      if (i > 0 && inputs[i - 1]!.input.address < inputs[i]!.input.address) next = inputs[i]!.input.address;
    }
    let cursor = out.address;
    let covered = 0;
    for (const [i, { input }] of inputs.entries()) {
      const from = Math.max(input.address, cursor);
      const to = Math.min(input.address + input.size, nextStart[i]!, end);
      if (to <= from) continue;
      const who = owner(input);
      add(who.library, who.member, to - from);
      covered += to - from;
      cursor = to;
    }
    // What the map does not account for (e.g. stub sections grown after the map listed them) is not guessed at.
    if (covered < size) add(OTHER_PART, 'unattributed', size - covered);
  }
  const loadableBytes = loadable.reduce((s, x) => s + x.size, 0);
  const list = [...parts.values()].sort((a, b) => (a.library === OTHER_PART ? 1 : b.library === OTHER_PART ? -1 : b.bytes - a.bytes || (a.library < b.library ? -1 : 1)));
  return { format: 'signet-native-tcb', version: 1, loadableBytes, fileBytes: elf.length, parts: list };
}

/** Written next to a cached signet-host: its NativeTcb. */
export const NATIVE_TCB_FILE = 'signet-host.tcb.json';

/** Library names of the static archives signet-host links, by archive file name. */
const ARCHIVE_LIBRARIES: Record<string, string> = {
  'libsodium.a': 'libsodium',
  'libuv_a.a': 'libuv',
  'libuv.a': 'libuv',
  'libmbedtls.a': 'mbedtls',
  'libmbedx509.a': 'mbedtls',
  'libmbedcrypto.a': 'mbedtls',
  'libduktape.a': 'duktape',
};

export interface NativeLinkInputs {
  /** The folder holding our own objects (host.c, tls.c, ... compiled): every object directly in it is library `signet`. */
  ownDir: string;
  /** The engine object (duktape.c compiled): library `duktape`. */
  engineObject: string;
  /** The static archives given to the link, with the Debian package each came from (or the library name). */
  archives: readonly { path: string; pkg: string }[];
  /** A C library other than the toolchain's (the device's musl): everything in `dir` is `library`. */
  libc?: { dir: string; library: string };
}

/** The classifier for signet-host's link: our objects, the engine, the Debian archives. */
export function signetHostClassifier(inputs: NativeLinkInputs): OriginClassifier {
  const archives = new Map(inputs.archives.map((a) => [a.path, ARCHIVE_LIBRARIES[basename(a.path)] ?? a.pkg.replace(/-dev$/, '')]));
  return ({ file }) => {
    if (file.endsWith('.o') && dirname(file) === inputs.ownDir) return { library: 'signet', member: basename(file).replace(/\.o$/, '.c') };
    if (file === inputs.engineObject) return { library: 'duktape', member: 'duktape.c' };
    const lib = archives.get(file);
    if (lib !== undefined) return { library: lib, member: basename(file) };
    if (inputs.libc !== undefined && dirname(file) === inputs.libc.dir) return { library: inputs.libc.library, member: basename(file) };
    return undefined;
  };
}

/** Checks a NativeTcb read back from a file: the fields, and that the parts add up. */
export function checkNativeTcb(x: unknown, where: string): NativeTcb {
  const bad = (why: string): never => {
    throw new TcbError('E_TCB_RECORD', `${where}: ${why}`);
  };
  const n = x as NativeTcb;
  if (typeof n !== 'object' || n === null || n.format !== 'signet-native-tcb' || n.version !== 1) bad('not a signet-native-tcb version 1 record');
  const int = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  if (!int(n.loadableBytes) || !int(n.fileBytes) || !Array.isArray(n.parts)) bad('loadableBytes, fileBytes or parts missing');
  let sum = 0;
  for (const p of n.parts) {
    if (typeof p?.library !== 'string' || !int(p.bytes) || typeof p.members !== 'object' || p.members === null) bad('a part without library, bytes or members');
    sum += p.bytes;
  }
  if (sum !== n.loadableBytes) bad(`parts add up to ${sum} bytes, not the ${n.loadableBytes} loadable bytes`);
  return n;
}
