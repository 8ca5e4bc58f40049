/**
 * The A/B boot environment (`bootenv` partition of an A/B disk, docs/boot-state.md §A/B boot
 * slots): which boot slot U-Boot boots and how often it has tried, in U-Boot's own environment
 * format so that stock U-Boot reads and writes it with `env import -c` / `env export -c`.
 *
 * Each copy is one sector (BOOTENV_BLOCK bytes, so a sector write is all or nothing):
 *
 *   0   u32 LE   CRC-32 (IEEE, as zlib) of bytes 4..BOOTENV_BLOCK
 *   4   "name=value\0" per variable, then "\0", then zero padding
 *
 * Copy 0 is sector 0 of the partition, copy 1 sector sectorCount / 2. Variables (numbers are
 * hex without 0x, as U-Boot's `setexpr` writes them and `itest` reads them):
 *   ab_seq     sequence number; the valid copy with the higher one is current
 *   boot_slot  a | b: the slot U-Boot boots (the one it picked for this boot)
 *   bootcount  boots of boot_slot since it was last confirmed
 *   bootlimit  tries before U-Boot switches to the other slot
 *   boot_good  a | b: the slot the boot stage last confirmed (absent until then)
 * Writers (U-Boot's bootcmd and `confirmBootSlot`) write seq + 1 into the copy that does not hold
 * the current one, so a cut during a write leaves the current copy intact.
 */
import { crc32 } from '../../sdk/util/crc32';
import type { BlockDevice } from './block';

export const BOOTENV_BLOCK = 512;
/** In the order U-Boot's `env export` writes them (sorted), so both writers give the same bytes. */
export const BOOTENV_VARS = ['ab_seq', 'boot_good', 'boot_slot', 'bootcount', 'bootlimit'];

export type BootEnvVars = { [name: string]: string };

export interface BootEnvRead {
  /** The current copy's variables, or null when neither copy is valid (not an A/B disk). */
  vars: BootEnvVars | null;
  /** Which copy is current (0 or 1); -1 when none. */
  current: number;
  /** Per copy: why it was refused, or '' when valid. */
  refused: string[];
}

/** One copy: CRC-32, then the variables in the order given, then zeros. Throws when they do not fit. */
export function encodeBootEnvBlock(vars: BootEnvVars, names: string[]): Uint8Array {
  const out = new Uint8Array(BOOTENV_BLOCK);
  let at = 4;
  for (let i = 0; i < names.length; i++) {
    const v = vars[names[i]];
    if (v === undefined) continue;
    const kv = names[i] + '=' + v;
    if (!/^[a-z_]+=[0-9a-z]*$/.test(kv)) throw new Error('boot env variable ' + names[i] + ' has a value U-Boot cannot hold here');
    if (at + kv.length + 2 > BOOTENV_BLOCK) throw new Error('boot env variables do not fit one block');
    for (let j = 0; j < kv.length; j++) out[at++] = kv.charCodeAt(j);
    out[at++] = 0;
  }
  out[at] = 0;
  const crc = crc32(out.subarray(4));
  out[0] = crc & 255;
  out[1] = (crc >>> 8) & 255;
  out[2] = (crc >>> 16) & 255;
  out[3] = (crc >>> 24) & 255;
  return out;
}

/** One copy's variables, or a reason it is refused (E_BOOTENV_CRC, E_BOOTENV_FORMAT). */
export function decodeBootEnvBlock(block: Uint8Array): { vars: BootEnvVars } | { refused: string } {
  if (block.length < BOOTENV_BLOCK) return { refused: 'E_BOOTENV_FORMAT' };
  const want = (block[0] | (block[1] << 8) | (block[2] << 16) | (block[3] << 24)) >>> 0;
  if (crc32(block.subarray(4, BOOTENV_BLOCK)) !== want) return { refused: 'E_BOOTENV_CRC' };
  const vars: BootEnvVars = {};
  let i = 4;
  while (i < BOOTENV_BLOCK && block[i] !== 0) {
    let s = '';
    while (i < BOOTENV_BLOCK && block[i] !== 0) s += String.fromCharCode(block[i++]);
    i++;
    const eq = s.indexOf('=');
    if (eq <= 0) return { refused: 'E_BOOTENV_FORMAT' };
    vars[s.slice(0, eq)] = s.slice(eq + 1);
  }
  if (i >= BOOTENV_BLOCK) return { refused: 'E_BOOTENV_FORMAT' };
  // The fields this format defines must hold what they may hold; an unknown variable is ignored
  // (U-Boot imports only the names above).
  if (!/^[0-9a-f]{1,8}$/.test(vars.ab_seq || '')) return { refused: 'E_BOOTENV_FORMAT' };
  if (vars.boot_slot !== 'a' && vars.boot_slot !== 'b') return { refused: 'E_BOOTENV_FORMAT' };
  if (!/^[0-9a-f]{1,8}$/.test(vars.bootcount || '') || !/^[0-9a-f]{1,8}$/.test(vars.bootlimit || '')) return { refused: 'E_BOOTENV_FORMAT' };
  if (vars.boot_good !== undefined && vars.boot_good !== 'a' && vars.boot_good !== 'b') return { refused: 'E_BOOTENV_FORMAT' };
  return { vars };
}

function copySector(dev: BlockDevice, copy: number): number {
  return copy === 0 ? 0 : Math.floor(dev.sectorCount / 2);
}

export function readBootEnv(dev: BlockDevice): BootEnvRead {
  const seen: ({ vars: BootEnvVars } | { refused: string })[] = [];
  for (let c = 0; c < 2; c++) seen.push(decodeBootEnvBlock(dev.read(copySector(dev, c), BOOTENV_BLOCK / dev.sectorSize)));
  const refused = seen.map(function (s) { return 'refused' in s ? s.refused : ''; });
  let current = -1;
  for (let c = 0; c < 2; c++) {
    const s = seen[c];
    if ('vars' in s && (current < 0 || parseInt(s.vars.ab_seq, 16) > parseInt((seen[current] as { vars: BootEnvVars }).vars.ab_seq, 16))) current = c;
  }
  return { vars: current < 0 ? null : (seen[current] as { vars: BootEnvVars }).vars, current: current, refused: refused };
}

/** Writes `vars` with the next sequence number into the copy that is not current, then flushes. */
export function writeBootEnv(dev: BlockDevice, read: BootEnvRead, vars: BootEnvVars): BootEnvRead {
  const next: BootEnvVars = {};
  for (let i = 0; i < BOOTENV_VARS.length; i++) if (vars[BOOTENV_VARS[i]] !== undefined) next[BOOTENV_VARS[i]] = vars[BOOTENV_VARS[i]];
  const seq = read.vars ? parseInt(read.vars.ab_seq, 16) : 0;
  next.ab_seq = ((seq + 1) >>> 0).toString(16);
  const target = read.current === 0 ? 1 : 0;
  dev.write(copySector(dev, target), encodeBootEnvBlock(next, BOOTENV_VARS));
  dev.flush();
  const refused = read.refused.slice();
  refused[target] = '';
  return { vars: next, current: target, refused: refused };
}

/** The first boot environment of a disk: boot `slot`, no tries yet, both copies written. */
export function provisionBootEnv(dev: BlockDevice, slot: 'a' | 'b', bootlimit: number): void {
  const vars: BootEnvVars = { boot_slot: slot, bootcount: '0', bootlimit: bootlimit.toString(16), boot_good: slot };
  const first = writeBootEnv(dev, { vars: null, current: -1, refused: ['', ''] }, vars);
  writeBootEnv(dev, first, vars);
}

/**
 * The boot stage confirms the boot slot it runs from: bootcount back to 0 and boot_good set to
 * the slot U-Boot booted. No write when that is already so, and none when neither copy is valid:
 * a disk without A/B boot slots has no environment here, and this never creates one.
 */
export function confirmBootSlot(dev: BlockDevice, log: (line: string) => void): void {
  const r = readBootEnv(dev);
  for (let c = 0; c < 2; c++) if (r.vars && r.refused[c]) log('boot[BOOTENV] copy=' + c + ' reason=' + r.refused[c]);
  if (!r.vars) return;
  const v = r.vars;
  if (parseInt(v.bootcount, 16) === 0 && v.boot_good === v.boot_slot) return;
  const next: BootEnvVars = { boot_slot: v.boot_slot, bootcount: '0', bootlimit: v.bootlimit, boot_good: v.boot_slot };
  writeBootEnv(dev, r, next);
  log('boot[BOOT-CONFIRM] slot=' + v.boot_slot + ' tries=' + parseInt(v.bootcount, 16));
}
