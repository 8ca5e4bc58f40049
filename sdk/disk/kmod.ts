/**
 * Kernel modules for an initramfs, without depmod: each module's `.modinfo` ELF section names
 * the modules it depends on (`depends=a,b`), which is what modules.dep is built from. Debian's
 * kernel packages ship no modules.dep (depmod runs at install time), so we read it ourselves.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiskError } from './errors';

/** Modules are named with '_' and '-' interchangeably; the kernel normalises to '_'. */
export function moduleName(fileOrName: string): string {
  return fileOrName.replace(/^.*\//, '').replace(/\.ko$/, '').replace(/-/g, '_');
}

/** Key/value pairs of an ELF32/ELF64 little-endian module's .modinfo section. */
export function readModinfo(ko: Uint8Array, what = 'module'): Map<string, string[]> {
  const bad = (why: string): never => {
    throw new DiskError('E_KERNEL_MODULE', `${what} is not a kernel module (${why})`, 'delete the kernel from the cache and fetch it again');
  };
  if (ko.length < 64 || ko[0] !== 0x7f || ko[1] !== 0x45 || ko[2] !== 0x4c || ko[3] !== 0x46) bad('no ELF magic');
  const is64 = ko[4] === 2;
  if (ko[4] !== 1 && ko[4] !== 2) bad('unknown ELF class');
  if (ko[5] !== 1) bad('not little-endian');
  const v = new DataView(ko.buffer, ko.byteOffset, ko.byteLength);
  const word = (off: number) => (is64 ? Number(v.getBigUint64(off, true)) : v.getUint32(off, true));
  const shoff = word(is64 ? 0x28 : 0x20);
  const shentsize = v.getUint16(is64 ? 0x3a : 0x2e, true);
  const shnum = v.getUint16(is64 ? 0x3c : 0x30, true);
  const shstrndx = v.getUint16(is64 ? 0x3e : 0x32, true);
  if (shoff + shnum * shentsize > ko.length || shstrndx >= shnum) bad('section headers out of range');
  const section = (i: number) => {
    const base = shoff + i * shentsize;
    const offset = word(base + (is64 ? 0x18 : 0x10));
    const size = word(base + (is64 ? 0x20 : 0x14));
    if (offset + size > ko.length) bad(`section ${i} out of range`);
    return { name: v.getUint32(base, true), bytes: ko.subarray(offset, offset + size) };
  };
  const names = section(shstrndx).bytes;
  const dec = new TextDecoder();
  const nameAt = (off: number) => {
    let end = off;
    while (end < names.length && names[end] !== 0) end++;
    return dec.decode(names.subarray(off, end));
  };
  const info = new Map<string, string[]>();
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (nameAt(s.name) !== '.modinfo') continue;
    for (const kv of dec.decode(s.bytes).split('\0')) {
      const eq = kv.indexOf('=');
      if (eq <= 0) continue;
      const key = kv.slice(0, eq);
      info.set(key, [...(info.get(key) ?? []), kv.slice(eq + 1)]);
    }
    return info;
  }
  return bad('no .modinfo section');
}

function walk(dir: string, out: Map<string, string>): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith('.ko')) out.set(moduleName(e.name), p);
  }
}

function builtinModules(modulesDir: string): Set<string> {
  try {
    return new Set(readFileSync(join(modulesDir, 'modules.builtin'), 'utf8').split('\n').filter(Boolean).map(moduleName));
  } catch {
    return new Set();
  }
}

export interface ResolvedModule {
  name: string;
  /** Where it lives in the kernel package. */
  source: string;
  /** Where it goes in the initramfs. */
  path: string;
  data: Uint8Array;
}

/**
 * `names` and everything they depend on, dependencies first (the order to load them in).
 * Modules built into the kernel are skipped: asking for one is not an error.
 */
export function resolveModules(modulesDir: string, names: readonly string[]): ResolvedModule[] {
  const files = new Map<string, string>();
  walk(join(modulesDir, 'kernel'), files);
  const builtin = builtinModules(modulesDir);
  const order: ResolvedModule[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, chain: string[]) => {
    const n = moduleName(name);
    if (builtin.has(n) || state.get(n) === 'done') return;
    if (state.get(n) === 'visiting') {
      throw new DiskError('E_KERNEL_MODULE', `kernel modules depend on each other in a cycle: ${[...chain, n].join(' → ')}`, 'report this kernel package');
    }
    const source = files.get(n);
    if (!source) {
      throw new DiskError('E_KERNEL_MODULE', `kernel module ${n} is neither built in nor in ${modulesDir}${chain.length ? ` (needed by ${chain[chain.length - 1]})` : ''}`, 'choose a kernel package that has it');
    }
    state.set(n, 'visiting');
    const data = new Uint8Array(readFileSync(source));
    const deps = (readModinfo(data, source).get('depends') ?? []).flatMap((d) => d.split(',')).filter(Boolean).sort();
    for (const d of deps) visit(d, [...chain, n]);
    state.set(n, 'done');
    order.push({ name: n, source, path: `lib/modules/${n}.ko`, data });
  };
  for (const n of names) visit(n, []);
  return order;
}
