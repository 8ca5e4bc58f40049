/**
 * board.json: what a board is (arch, hypervisor, engine), where things load, how its flash is
 * laid out and how to talk to its serial console. Data, not code; checked here against one
 * schema with errors that name the file and the JSON path. Unknown fields are errors.
 */
import { UBOOT_QUOTABLE, UBOOT_VARIABLE_NAME } from '../flash/uboot-syntax';
import { CONFIG_AREA_BYTES, stateConfigAreas } from '../../bootloader/src/configstore';

export type Arch = 'arm64' | 'armhf';
export type Hypervisor = 'kvm' | 'xen';

export interface Partition {
  name: string; // boot | slot_a | slot_b | state
  offset: number; // bytes from the start of the flash device
  size: number; // bytes
}

export interface Board {
  id: string;
  name: string;
  kind: 'emulated' | 'reference';
  arch: Arch;
  hypervisor: Hypervisor;
  engine: 'duktape-es5';
  notes?: string;
  kernel: {
    /** The Debian binary kernel (a linux-image meta package): used when source is "debian-binary". */
    package: string;
    console: string;
    cmdline?: string;
    /**
     * Where the kernel comes from: "debian-binary" (default: Debian's linux-image package above) or
     * "debian-source" (built by `signet kernel build` from Debian's linux-source-<version> with
     * boards/<id>/kernel.config, sdk/kernel).
     */
    source?: 'debian-binary' | 'debian-source';
    /** The linux-source version to build, e.g. "6.1" (required for "debian-source"). */
    version?: string;
  };
  xen?: {
    package: string;
    dom0Memory?: number;
    domUMemoryMb: number;
    bootargs?: string;
    /**
     * Where Xen comes from: "debian-binary" (default: the Debian package above) or "debian-source"
     * (built by `signet xen build` from Debian's pinned xen source package `version` with
     * boards/<id>/xen.config, sdk/xen; static memory and a direct-mapped DomU with a NIC).
     */
    source?: 'debian-binary' | 'debian-source';
    /** The pinned xen source package version, e.g. "4.17.5+72-g01140da4e8-1" (for "debian-source"). */
    version?: string;
    /** Host address of the DomU's static, direct-mapped RAM (domUMemoryMb long), e.g. "0x50000000" (for "debian-source"). */
    staticMemory?: string;
  };
  loadAddresses: { kernel: string; ramdisk: string; fdt: string; fit: string };
  flash: {
    device: string;
    blockSize: number;
    /**
     * Bytes the flash erases at once when larger than blockSize (NOR behind mtdblock): every
     * partition, and each area of the state partition (bootloader/src/configstore.ts
     * stateConfigAreas), then starts on its own erase block. Absent: sector-atomic (eMMC).
     */
    eraseBlockSize?: number;
    size: number;
    partitions: Partition[];
  };
  serial: {
    baud: number;
    console: string;
    prompt: string;
    interruptKey?: string;
    loadAddress: string;
    ramWindow: number;
    storageInit?: string;
    /**
     * Templates (hex): `{addr}` RAM, with `{block}` `{count}` in flash.blockSize blocks (block
     * storage), or `{flash}` `{last}` `{bytes}` in the memory map from flashAddress (NOR).
     */
    write: string;
    read: string;
    /**
     * NOR flash: erase the erase blocks `{flash}`..`{last}`; then `write` programs only what is
     * not 0xff. With it, chunks are whole flash.eraseBlockSize blocks (docs/flashing.md, NOR).
     */
    erase?: string;
    /** NOR flash: where U-Boot sees offset 0 of the storage (hex). */
    flashAddress?: string;
    env?: Record<string, string>;
    /**
     * What `signet flash` does with `env`: "save" (default) sets it and runs saveenv; "check" is
     * for a board whose U-Boot cannot save its environment (compiled-in or factory environment):
     * the flasher checks the running environment already holds `env`, before writing anything.
     */
    envMode?: 'save' | 'check';
  };
  qemu?: { system: string; machine: string; cpu: string; memoryMb: number; firmware?: string };
  /**
   * The guest's network (kvm boards), brought up by /init on `interface` (default eth0): by DHCP
   * (`mode: "dhcp"`, the default when no address is given), or a static IPv4 address with its
   * prefix length and an optional default gateway (`mode: "static"`, the default when `address`
   * is given). `dns`: the resolver's servers, instead of the ones DHCP names. Absent: DHCP on
   * eth0 (sdk/disk/network.ts).
   */
  network?: { interface?: string; mode?: 'dhcp' | 'static'; address?: string; gateway?: string; dns?: string[] };
}

type Rule =
  | { t: 'string'; re?: RegExp; enum?: string[] }
  | { t: 'int'; min: number; max: number }
  | { t: 'hex' }
  | { t: 'object'; fields: Record<string, { rule: Rule; optional?: boolean }> }
  | { t: 'list'; of: Rule; min: number; max: number }
  | { t: 'map'; of: Rule; key?: RegExp };

const S = (re?: RegExp): Rule => ({ t: 'string', re });
const E = (...values: string[]): Rule => ({ t: 'string', enum: values });
const I = (min: number, max: number): Rule => ({ t: 'int', min, max });
const H: Rule = { t: 'hex' };
/** A storage command names RAM and a range: in blocks, or in the NOR bank's memory map. */
const STORAGE_TEMPLATE = /\{addr\}.*\{block\}.*\{count\}|(?=.*\{addr\})(?=.*\{flash\})(?=.*\{bytes\})/;
const O = (fields: Record<string, Rule | [Rule, 'optional']>): Rule => ({
  t: 'object',
  fields: Object.fromEntries(
    Object.entries(fields).map(([k, v]) => [k, Array.isArray(v) ? { rule: v[0], optional: true } : { rule: v }]),
  ),
});
const GiB64 = 2 ** 46;

export const BOARD_SCHEMA: Rule = O({
  id: S(/^[a-z0-9][a-z0-9-]{0,63}$/),
  name: S(/^.{1,120}$/),
  kind: E('emulated', 'reference'),
  arch: E('arm64', 'armhf'),
  hypervisor: E('kvm', 'xen'),
  engine: E('duktape-es5'),
  notes: [S(), 'optional'],
  kernel: O({
    package: S(/^[a-z0-9][a-z0-9.+-]+$/),
    console: S(/^[A-Za-z0-9]+$/),
    cmdline: [S(), 'optional'],
    source: [E('debian-binary', 'debian-source'), 'optional'],
    version: [S(/^[0-9]+\.[0-9]+$/), 'optional'],
  }),
  xen: [O({
    package: S(/^[a-z0-9][a-z0-9.+-]+$/),
    dom0Memory: [I(0, 65536), 'optional'],
    domUMemoryMb: I(16, 65536),
    bootargs: [S(), 'optional'],
    source: [E('debian-binary', 'debian-source'), 'optional'],
    version: [S(/^[0-9][A-Za-z0-9.+~-]{0,80}$/), 'optional'],
    staticMemory: [H, 'optional'],
  }), 'optional'],
  loadAddresses: O({ kernel: H, ramdisk: H, fdt: H, fit: H }),
  flash: O({
    device: S(/^\/dev\/[A-Za-z0-9/_-]+$/),
    blockSize: I(512, 1 << 20),
    eraseBlockSize: [I(512, 1 << 24), 'optional'],
    size: I(1 << 20, GiB64),
    partitions: { t: 'list', min: 4, max: 16, of: O({ name: S(/^[a-z0-9_]{1,32}$/), offset: I(0, GiB64), size: I(1, GiB64) }) },
  }),
  serial: O({
    baud: I(300, 4_000_000),
    console: S(/^[A-Za-z0-9]+$/),
    prompt: S(/^.{1,32}$/),
    interruptKey: [S(), 'optional'],
    loadAddress: H,
    ramWindow: I(4096, GiB64),
    storageInit: [S(), 'optional'],
    write: S(STORAGE_TEMPLATE),
    read: S(STORAGE_TEMPLATE),
    erase: [S(/\{flash\}.*\{last\}/), 'optional'],
    flashAddress: [H, 'optional'],
    // Typed into U-Boot inside single quotes by the console driver, under the same rules: checked
    // when the board file is read, not after a whole disk went over the line.
    env: [{ t: 'map', key: UBOOT_VARIABLE_NAME, of: S(UBOOT_QUOTABLE) }, 'optional'],
    envMode: [E('save', 'check'), 'optional'],
  }),
  qemu: [O({ system: S(/^qemu-system-[a-z0-9_]+$/), machine: S(), cpu: S(), memoryMb: I(64, 65536), firmware: [S(), 'optional'] }), 'optional'],
  network: [
    O({
      interface: [S(/^[a-z][a-z0-9]{0,14}$/), 'optional'],
      mode: [E('dhcp', 'static'), 'optional'],
      address: [S(/^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\/([0-9]|[12]\d|3[0-2])$/), 'optional'],
      gateway: [S(/^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/), 'optional'],
      dns: [{ t: 'list', min: 1, max: 3, of: S(/^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/) }, 'optional'],
    }),
    'optional',
  ],
});

export const REQUIRED_PARTITIONS = ['boot', 'slot_a', 'slot_b', 'state'];

/** All schema violations, as "path: problem" strings (empty when valid). */
export function schemaErrors(v: unknown, rule: Rule = BOARD_SCHEMA, path = ''): string[] {
  const here = path || '(top)';
  switch (rule.t) {
    case 'string':
      if (typeof v !== 'string') return [`${here}: must be a string`];
      if (rule.enum && !rule.enum.includes(v)) return [`${here}: must be one of ${rule.enum.join(', ')} (got "${v}")`];
      if (rule.re && !rule.re.test(v)) return [`${here}: "${v}" does not match ${rule.re}`];
      return [];
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v)) return [`${here}: must be an integer`];
      if (v < rule.min || v > rule.max) return [`${here}: ${v} is outside ${rule.min}..${rule.max}`];
      return [];
    case 'hex':
      return typeof v === 'string' && /^0x[0-9a-fA-F]{1,16}$/.test(v) ? [] : [`${here}: must be a hex address string like "0x40200000"`];
    case 'list': {
      if (!Array.isArray(v)) return [`${here}: must be a list`];
      if (v.length < rule.min || v.length > rule.max) return [`${here}: needs ${rule.min}..${rule.max} entries, has ${v.length}`];
      return v.flatMap((x, i) => schemaErrors(x, rule.of, `${path}[${i}]`));
    }
    case 'map': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return [`${here}: must be an object`];
      return Object.entries(v).flatMap(([k, x]) =>
        rule.key && !rule.key.test(k) ? [`${path}.${k}: not an allowed name (${rule.key})`] : schemaErrors(x, rule.of, `${path}.${k}`),
      );
    }
    case 'object': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return [`${here}: must be an object`];
      const o = v as Record<string, unknown>;
      const errs: string[] = [];
      for (const k of Object.keys(o)) if (!(k in rule.fields)) errs.push(`${path ? path + '.' : ''}${k}: unknown field`);
      for (const [k, f] of Object.entries(rule.fields)) {
        const p = path ? `${path}.${k}` : k;
        if (!(k in o)) {
          if (!f.optional) errs.push(`${p}: missing`);
          continue;
        }
        errs.push(...schemaErrors(o[k], f.rule, p));
      }
      return errs;
    }
  }
}

/** Rules across fields: partitions present, aligned, inside the flash, not overlapping. */
export function layoutErrors(b: Board): string[] {
  const errs: string[] = [];
  const parts = b.flash.partitions;
  for (const name of REQUIRED_PARTITIONS) {
    if (!parts.some((p) => p.name === name)) errs.push(`flash.partitions: no "${name}" partition`);
  }
  const sorted = [...parts].sort((x, y) => x.offset - y.offset);
  sorted.forEach((p, i) => {
    if (p.offset % b.flash.blockSize || p.size % b.flash.blockSize) {
      errs.push(`flash.partitions.${p.name}: offset and size must be multiples of blockSize ${b.flash.blockSize}`);
    }
    if (p.offset + p.size > b.flash.size) errs.push(`flash.partitions.${p.name}: ends past the flash size ${b.flash.size}`);
    const next = sorted[i + 1];
    if (next && p.offset + p.size > next.offset) errs.push(`flash.partitions.${p.name}: overlaps ${next.name}`);
  });
  errs.push(...eraseLayoutErrors(b));
  const names = parts.map((p) => p.name);
  if (new Set(names).size !== names.length) errs.push('flash.partitions: a name appears twice');
  const a = parts.find((p) => p.name === 'slot_a');
  const bb = parts.find((p) => p.name === 'slot_b');
  if (a && bb && a.size !== bb.size) errs.push('flash.partitions: slot_a and slot_b must be the same size');
  if (b.hypervisor === 'xen' && !b.xen) errs.push('xen: required for hypervisor "xen"');
  if (b.xen?.source === 'debian-source' && (!b.xen.version || !b.xen.staticMemory)) errs.push('xen: source "debian-source" needs version and staticMemory');
  if (b.kernel.source === 'debian-source' && !b.kernel.version) errs.push('kernel.version: required for kernel.source "debian-source" (the linux-source version, e.g. "6.1")');
  const net = b.network;
  if (net && net.mode === 'static' && !net.address) errs.push('network.address: required with mode "static"');
  if (net && net.mode === 'dhcp' && (net.address || net.gateway)) errs.push('network: address and gateway come from DHCP with mode "dhcp"; leave them out');
  if (net && !net.address && net.gateway) errs.push('network.gateway: only with a static address');
  return errs;
}

/**
 * On a flash that erases blocks larger than a sector, a write tears its whole erase block: every
 * partition must own its erase blocks, and the state partition must be large enough for its six
 * areas (two state copies, chain areas and config copies) to each start on an erase block of
 * their own (bootloader/src/configstore.ts stateConfigAreas).
 */
export function eraseLayoutErrors(b: Board): string[] {
  const eb = b.flash.eraseBlockSize;
  if (!eb || eb <= b.flash.blockSize) return [];
  if (eb % b.flash.blockSize) return [`flash.eraseBlockSize: ${eb} is not a multiple of blockSize ${b.flash.blockSize}`];
  const errs: string[] = [];
  for (const p of b.flash.partitions) {
    if (p.offset % eb || p.size % eb) errs.push(`flash.partitions.${p.name}: offset and size must be multiples of eraseBlockSize ${eb}, so that no write erases another partition`);
  }
  const st = b.flash.partitions.find((p) => p.name === 'state');
  if (st && (st.size % (2 * eb) !== 0 || !stateConfigAreas({ sectorSize: b.flash.blockSize, sectorCount: st.size / b.flash.blockSize, eraseBlockSize: eb, read: noIo, write: noIo, flush: noIo }))) {
    const span = Math.ceil(CONFIG_AREA_BYTES / eb) * eb;
    const min = 2 * (eb + 2 * span);
    errs.push(`flash.partitions.state: ${st.size} bytes cannot give its state copies, chain areas and config copies an erase block each; make it ${min} bytes (a multiple of ${2 * eb}) or more`);
  }
  return errs;
}

function noIo(): never {
  throw new Error('layout only');
}
