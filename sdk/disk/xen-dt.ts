/**
 * The device tree Xen boots from in dom0less mode: the platform's tree (for QEMU `virt`, the
 * one QEMU itself generates) with `/chosen` extended as Xen's
 * docs/misc/arm/device-tree/booting.txt describes:
 *
 *   /chosen
 *     #address-cells, #size-cells      cells of the module `reg`s below (1 when all fit 32 bits)
 *     xen,xen-bootargs                 Xen's own command line
 *     domU1                            compatible = "xen,domain": one guest Xen builds at boot
 *       #address-cells, #size-cells
 *       memory = <u64>                 guest RAM in KiB
 *       cpus = <u32>
 *       vpl011                         an emulated PL011 (SBSA UART) as the guest's console
 *       module@<addr>                  compatible = "multiboot,kernel", "multiboot,module"
 *         reg = <addr size>            where the zImage already sits in host memory
 *         bootargs = "..."             the guest kernel's command line
 *       module@<addr>                  compatible = "multiboot,ramdisk", "multiboot,module"
 *         reg = <addr size>
 *       module@<addr>                  compatible = "multiboot,device-tree", "multiboot,module"
 *         reg = <addr size>            a partial tree: its /passthrough node goes into the
 *                                      guest's tree, its xen,reg ranges are mapped into the guest
 *                                      (docs/misc/arm/passthrough.txt, "Dom0-less Device Passthrough")
 *
 * With no dom0 module in /chosen, Xen 4.17 boots the DomUs alone ("true dom0less").
 * Written and read with our own FDT codec (sdk/fit/fdt.ts); no dtc at run time.
 */
import {
  cellsValue,
  decodeFdt,
  encodeFdt,
  ensureChild,
  fdtNode,
  fdtProp,
  findNode,
  getProp,
  readStringList,
  readU32,
  stringListProp,
  stringProp,
  stringValue,
  u32Prop,
  u64Prop,
  type Fdt,
  type FdtNode,
} from '../fit/fdt';
import { XenError } from './xen-errors';

export const XEN_DOMAIN_COMPATIBLE = 'xen,domain';
export const MULTIBOOT_MODULE = 'multiboot,module';
export const MULTIBOOT_KERNEL = 'multiboot,kernel';
export const MULTIBOOT_RAMDISK = 'multiboot,ramdisk';
export const MULTIBOOT_DEVICE_TREE = 'multiboot,device-tree';

/** QEMU fills these with fresh random bytes on every run; dropped so the tree is deterministic. */
export const VOLATILE_CHOSEN_PROPERTIES = ['rng-seed', 'kaslr-seed'] as const;

/** A blob already placed in host memory (by QEMU's loader or U-Boot) for Xen to take. */
export interface XenBootModule {
  address: number;
  size: number;
}

export interface DomUSpec {
  /** Node name under /chosen, e.g. "domU1". Xen numbers domains in node order from 1. */
  name: string;
  memoryKb: number;
  cpus: number;
  /** Give the guest an emulated PL011 whose output Xen prints as `(XEN) DOM<n>: ...`. */
  vpl011: boolean;
  kernel: XenBootModule & { bootargs: string };
  ramdisk?: XenBootModule;
  /** A partial device tree (passthrough.ts's `buildPassthroughDtb`): devices Xen hands the guest. */
  deviceTree?: XenBootModule;
  /**
   * Static memory (`xen,static-mem`, Xen with CONFIG_STATIC_MEMORY): the guest's RAM is this host
   * range, memoryKb long; with `directMap` (`direct-map`) mapped 1:1, guest physical == host physical.
   */
  staticMemory?: XenBootModule;
  directMap?: boolean;
}

export interface Dom0lessConfig {
  xenBootargs: string;
  domUs: DomUSpec[];
}

/** A range of host RAM, from the platform tree's /memory nodes. */
export interface MemoryRange {
  address: number;
  size: number;
}

const U32_LIMIT = 2 ** 32;

function readCells(value: Uint8Array, cells: number, what: string): number[] {
  if (cells !== 1 && cells !== 2) {
    throw new XenError('E_XEN_DTB', `${what} uses ${cells} address/size cells`, 'use 1 or 2 cells');
  }
  if (value.length % (4 * cells) !== 0) {
    throw new XenError('E_XEN_DTB', `${what} is ${value.length} bytes, not a whole number of ${cells}-cell values`, 'fix the device tree');
  }
  const out: number[] = [];
  for (let off = 0; off < value.length; off += 4 * cells) {
    let v = 0;
    for (let c = 0; c < cells; c++) v = v * U32_LIMIT + readU32(value.subarray(off + 4 * c, off + 4 * c + 4), what);
    if (!Number.isSafeInteger(v)) throw new XenError('E_XEN_DTB', `${what} holds a value past 2^53`, 'fix the device tree');
    out.push(v);
  }
  return out;
}

function cellCount(node: FdtNode, name: '#address-cells' | '#size-cells', fallback: number): number {
  const v = getProp(node, name);
  return v ? readU32(v, `${node.name || '/'} ${name}`) : fallback;
}

/** The `reg` ranges of a node directly under the root (the root's address and size cells). */
export function rootChildRanges(fdt: Fdt, node: FdtNode): MemoryRange[] {
  const ac = cellCount(fdt.root, '#address-cells', 2);
  const sc = cellCount(fdt.root, '#size-cells', 1);
  const reg = getProp(node, 'reg');
  if (!reg) return [];
  const cells = readCells(reg, 1, `/${node.name} reg`);
  const stride = ac + sc;
  const out: MemoryRange[] = [];
  for (let i = 0; i + stride <= cells.length; i += stride) {
    out.push({ address: joinCells(cells.slice(i, i + ac)), size: joinCells(cells.slice(i + ac, i + stride)) });
  }
  return out;
}

/** Host RAM as the platform tree describes it (every /memory node's `reg`). */
export function memoryRanges(fdt: Fdt): MemoryRange[] {
  const out: MemoryRange[] = [];
  for (const node of fdt.root.children) {
    if (node.name !== 'memory' && !node.name.startsWith('memory@')) continue;
    out.push(...rootChildRanges(fdt, node));
  }
  if (out.length === 0) throw new XenError('E_XEN_DTB', 'the platform device tree has no /memory node', 'boot with a tree that describes RAM');
  return out;
}

function joinCells(cells: number[]): number {
  return cells.reduce((v, c) => v * U32_LIMIT + c, 0);
}

function end(m: XenBootModule): number {
  return m.address + m.size;
}

/**
 * Checks the modules against RAM and each other (Xen copies them into the guest, so a module
 * overlapping another, or lying outside RAM, would be loaded corrupt).
 */
export function checkModules(ram: MemoryRange[], modules: { what: string; m: XenBootModule }[]): void {
  for (const { what, m } of modules) {
    if (!Number.isSafeInteger(m.address) || !Number.isSafeInteger(m.size) || m.size <= 0 || m.address < 0) {
      throw new XenError('E_XEN_ADDRESS', `${what} has address ${m.address} and size ${m.size}`, 'give a positive size and an address in RAM');
    }
    if (!ram.some((r) => m.address >= r.address && end(m) <= r.address + r.size)) {
      throw new XenError('E_XEN_ADDRESS', `${what} at ${hex(m.address)}..${hex(end(m))} is not inside RAM (${ram.map((r) => `${hex(r.address)}..${hex(r.address + r.size)}`).join(', ')})`, 'move it in the board\'s loadAddresses or give QEMU more memory');
    }
  }
  for (let i = 0; i < modules.length; i++) {
    for (let j = i + 1; j < modules.length; j++) {
      const a = modules[i]!;
      const b = modules[j]!;
      if (a.m.address < end(b.m) && b.m.address < end(a.m)) {
        throw new XenError('E_XEN_ADDRESS', `${a.what} (${hex(a.m.address)}..${hex(end(a.m))}) overlaps ${b.what} (${hex(b.m.address)}..${hex(end(b.m))})`, 'move one of them in the board\'s loadAddresses');
      }
    }
  }
}

export function hex(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0');
}

function moduleNode(compatible: string, m: XenBootModule, cells: 1 | 2, bootargs?: string): FdtNode {
  const props = [stringListProp('compatible', [compatible, MULTIBOOT_MODULE]), fdtProp('reg', cellsValue([m.address, m.size], cells))];
  if (bootargs !== undefined) props.push(stringProp('bootargs', bootargs));
  return fdtNode(`module@${m.address.toString(16)}`, props);
}

/**
 * Adds the dom0less nodes to `fdt` in place. Refuses a tree that already carries boot modules
 * or domains (two sets of instructions for Xen would be ambiguous).
 */
export function addDom0less(fdt: Fdt, cfg: Dom0lessConfig): void {
  const chosen = ensureChild(fdt.root, 'chosen');
  const taken = chosen.children.find((c) => {
    const compat = getProp(c, 'compatible');
    if (!compat) return false;
    const list = readStringList(compat, `/chosen/${c.name} compatible`);
    return list.includes(XEN_DOMAIN_COMPATIBLE) || list.includes(MULTIBOOT_MODULE);
  });
  if (taken) {
    throw new XenError('E_XEN_DTB', `the platform device tree already has /chosen/${taken.name} for Xen`, 'start from the platform tree without Xen nodes');
  }
  if (cfg.domUs.length === 0) throw new XenError('E_XEN_DTB', 'no DomU to boot', 'give at least one guest');
  const ram = memoryRanges(fdt);
  const all = cfg.domUs.flatMap((d) => [
    { what: `${d.name} kernel`, m: d.kernel },
    ...(d.ramdisk ? [{ what: `${d.name} ramdisk`, m: d.ramdisk }] : []),
    ...(d.deviceTree ? [{ what: `${d.name} partial device tree`, m: d.deviceTree }] : []),
    ...(d.staticMemory ? [{ what: `${d.name} static memory`, m: d.staticMemory }] : []),
  ]);
  checkModules(ram, all);
  for (const d of cfg.domUs) checkStaticMemory(d);
  const cells: 1 | 2 = all.every((x) => end(x.m) <= U32_LIMIT) ? 1 : 2;

  chosen.properties = chosen.properties.filter((p) => !(VOLATILE_CHOSEN_PROPERTIES as readonly string[]).includes(p.name));
  for (const prop of [u32Prop('#address-cells', cells), u32Prop('#size-cells', cells), stringProp('xen,xen-bootargs', cfg.xenBootargs)]) {
    chosen.properties = chosen.properties.filter((p) => p.name !== prop.name);
    chosen.properties.push(prop);
  }
  for (const d of cfg.domUs) {
    if (!/^[A-Za-z0-9_-]{1,31}$/.test(d.name) || chosen.children.some((c) => c.name === d.name)) {
      throw new XenError('E_XEN_DTB', `"${d.name}" cannot name a DomU node in /chosen`, 'use a unique name such as domU1');
    }
    if (!Number.isInteger(d.memoryKb) || d.memoryKb < 4096 || !Number.isInteger(d.cpus) || d.cpus < 1) {
      throw new XenError('E_XEN_DTB', `${d.name} asks for ${d.memoryKb} KiB and ${d.cpus} CPUs`, 'give at least 4 MiB and one CPU');
    }
    const props = [
      stringProp('compatible', XEN_DOMAIN_COMPATIBLE),
      u32Prop('#address-cells', cells),
      u32Prop('#size-cells', cells),
      u64Prop('memory', BigInt(d.memoryKb)),
      u32Prop('cpus', d.cpus),
    ];
    if (d.vpl011) props.push(fdtProp('vpl011', new Uint8Array(0)));
    if (d.staticMemory) props.push(fdtProp('xen,static-mem', cellsValue([d.staticMemory.address, d.staticMemory.size], cells)));
    if (d.directMap) props.push(fdtProp('direct-map', new Uint8Array(0)));
    const children = [moduleNode(MULTIBOOT_KERNEL, d.kernel, cells, d.kernel.bootargs)];
    if (d.ramdisk) children.push(moduleNode(MULTIBOOT_RAMDISK, d.ramdisk, cells));
    if (d.deviceTree) children.push(moduleNode(MULTIBOOT_DEVICE_TREE, d.deviceTree, cells));
    chosen.children.push(fdtNode(d.name, props, children));
  }
}

/**
 * Linux on arm32 needs its RAM to start on a 2 MiB boundary (ARM_PATCH_PHYS_VIRT), and Xen's
 * `memory` must equal the static range; `direct-map` needs static memory (Xen panics otherwise).
 */
export const STATIC_MEMORY_ALIGN = 2 * 1024 * 1024;

function checkStaticMemory(d: DomUSpec): void {
  if (d.directMap && !d.staticMemory) {
    throw new XenError('E_XEN_ADDRESS', `${d.name} is direct-mapped without static memory`, 'give the board xen.staticMemory');
  }
  const m = d.staticMemory;
  if (!m) return;
  if (m.address % STATIC_MEMORY_ALIGN !== 0) {
    throw new XenError('E_XEN_ADDRESS', `${d.name} static memory starts at ${hex(m.address)}, not on a 2 MiB boundary (Linux on arm32 cannot start its RAM there)`, 'move xen.staticMemory to a multiple of 0x200000');
  }
  if (m.size !== d.memoryKb * 1024) {
    throw new XenError('E_XEN_ADDRESS', `${d.name} static memory is ${m.size} bytes but its memory is ${d.memoryKb} KiB`, 'make them equal (xen.domUMemoryMb)');
  }
}

/** The platform tree plus the dom0less nodes, encoded. */
export function buildXenDtb(platformDtb: Uint8Array, cfg: Dom0lessConfig): Uint8Array {
  const fdt = decodeFdt(platformDtb);
  addDom0less(fdt, cfg);
  return encodeFdt(fdt);
}

/** Reads the dom0less configuration back out of a tree (for tests, `inspect`-style tools). */
export function readDom0less(fdt: Fdt): Dom0lessConfig {
  const chosen = findNode(fdt.root, '/chosen');
  if (!chosen) throw new XenError('E_XEN_DTB', 'the device tree has no /chosen node', 'build it with buildXenDtb');
  const bootargs = getProp(chosen, 'xen,xen-bootargs');
  const domUs: DomUSpec[] = [];
  for (const node of chosen.children) {
    const compat = getProp(node, 'compatible');
    if (!compat || !readStringList(compat).includes(XEN_DOMAIN_COMPATIBLE)) continue;
    const ac = cellCount(node, '#address-cells', 1);
    const sc = cellCount(node, '#size-cells', 1);
    const mem = getProp(node, 'memory');
    const cpus = getProp(node, 'cpus');
    if (!mem || !cpus) throw new XenError('E_XEN_DTB', `/chosen/${node.name} lacks memory or cpus`, 'Xen needs both for a DomU');
    const spec: Partial<DomUSpec> = {
      name: node.name,
      memoryKb: readCells(mem, 2, `/chosen/${node.name} memory`)[0]!,
      cpus: readU32(cpus, `/chosen/${node.name} cpus`),
      vpl011: getProp(node, 'vpl011') !== undefined,
      ...(getProp(node, 'direct-map') !== undefined ? { directMap: true } : {}),
    };
    const staticMem = getProp(node, 'xen,static-mem');
    if (staticMem) {
      const [address, size] = [...readCells(staticMem.subarray(0, 4 * ac), ac, 'xen,static-mem'), ...readCells(staticMem.subarray(4 * ac, 4 * (ac + sc)), sc, 'xen,static-mem')];
      spec.staticMemory = { address: address!, size: size! };
    }
    for (const m of node.children) {
      const list = readStringList(getProp(m, 'compatible') ?? stringValue(''), `${m.name} compatible`);
      const reg = getProp(m, 'reg');
      if (!reg || !list.includes(MULTIBOOT_MODULE)) continue;
      const [address, size] = [...readCells(reg.subarray(0, 4 * ac), ac, `${m.name} reg`), ...readCells(reg.subarray(4 * ac), sc, `${m.name} reg`)];
      const mod = { address: address!, size: size! };
      if (list.includes(MULTIBOOT_KERNEL)) {
        const args = getProp(m, 'bootargs');
        spec.kernel = { ...mod, bootargs: args ? readStringList(args)[0] ?? '' : '' };
      } else if (list.includes(MULTIBOOT_RAMDISK)) {
        spec.ramdisk = mod;
      } else if (list.includes(MULTIBOOT_DEVICE_TREE)) {
        spec.deviceTree = mod;
      }
    }
    if (!spec.kernel) throw new XenError('E_XEN_DTB', `/chosen/${node.name} has no multiboot,kernel module`, 'Xen cannot build a DomU without a kernel');
    domUs.push(spec as DomUSpec);
  }
  return { xenBootargs: bootargs ? readStringList(bootargs)[0] ?? '' : '', domUs };
}
