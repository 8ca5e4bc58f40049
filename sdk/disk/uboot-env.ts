/**
 * A U-Boot environment image (what `mkenvimage -s SIZE` writes, non-redundant form):
 *
 *   0   u32 LE   CRC-32 of bytes 4..SIZE
 *   4   "name=value\0" for each variable, sorted by name (as U-Boot's own `saveenv` sorts),
 *       then "\0", then 0xff padding (erased flash) to SIZE
 *
 * Debian's qemu_arm64 U-Boot keeps this at the start of the second pflash bank
 * (CONFIG_ENV_IS_IN_FLASH, CONFIG_ENV_ADDR=0x4000000, CONFIG_ENV_SIZE=0x40000).
 */
import { crc32 } from '../util/crc32';
import { DiskError } from './errors';

export const UBOOT_ENV_CRC_SIZE = 4;

export function encodeUbootEnv(vars: Record<string, string>, size: number): Uint8Array {
  const enc = new TextEncoder();
  const names = Object.keys(vars).sort();
  const body: number[] = [];
  for (const name of names) {
    const value = vars[name]!;
    if (!/^[A-Za-z0-9_.:-]+$/.test(name)) throw new DiskError('E_UBOOT_ENV', `U-Boot variable name "${name}" is not allowed`, 'use letters, digits and _ . : -');
    if (/[\0\n]/.test(value)) throw new DiskError('E_UBOOT_ENV', `U-Boot variable ${name} holds a NUL or newline`, 'put several commands on one line, separated by ;');
    body.push(...enc.encode(`${name}=${value}`), 0);
  }
  body.push(0);
  if (UBOOT_ENV_CRC_SIZE + body.length > size) {
    throw new DiskError('E_UBOOT_ENV', `the environment needs ${UBOOT_ENV_CRC_SIZE + body.length} bytes, U-Boot keeps ${size}`, 'shorten the variables');
  }
  const out = new Uint8Array(size).fill(0xff);
  out.set(body, UBOOT_ENV_CRC_SIZE);
  new DataView(out.buffer).setUint32(0, crc32(out.subarray(UBOOT_ENV_CRC_SIZE)), true);
  return out;
}

/** Reads an environment image back (tests); throws when the CRC does not match. */
export function decodeUbootEnv(image: Uint8Array): Record<string, string> {
  const crc = new DataView(image.buffer, image.byteOffset, image.byteLength).getUint32(0, true);
  if (crc32(image.subarray(UBOOT_ENV_CRC_SIZE)) !== crc) throw new DiskError('E_UBOOT_ENV', 'environment CRC mismatch', 'regenerate the environment');
  const out: Record<string, string> = {};
  const dec = new TextDecoder();
  let i = UBOOT_ENV_CRC_SIZE;
  while (i < image.length && image[i] !== 0) {
    let end = i;
    while (end < image.length && image[end] !== 0) end++;
    const kv = dec.decode(image.subarray(i, end));
    const eq = kv.indexOf('=');
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
    i = end + 1;
  }
  return out;
}
