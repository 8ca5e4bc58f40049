/**
 * cpio "newc" (SVR4 without CRC) archives, the format the Linux kernel unpacks as an initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst). Written deterministically: entries
 * sorted by path, inode numbers counted from 1 in that order, one fixed mtime, uid/gid 0, so the
 * same entries give the same bytes on any machine.
 *
 * Each entry is a 110-byte ASCII header (magic + 13 fields of 8 hex digits), the NUL-terminated
 * name padded to 4 bytes (counting from the header's start), then the data padded to 4 bytes. The
 * archive ends with an entry named TRAILER!!! and is zero-padded to a multiple of 512 bytes.
 */
import { DiskError } from './errors';

export const CPIO_NEWC_MAGIC = '070701';
export const CPIO_TRAILER = 'TRAILER!!!';
export const CPIO_HEADER_SIZE = 110;
const CPIO_BLOCK = 512;

/** The header fields after the magic, in file order; each is 8 upper-case hex digits. */
export const CPIO_NEWC_FIELDS = [
  'ino', 'mode', 'uid', 'gid', 'nlink', 'mtime', 'filesize',
  'devmajor', 'devminor', 'rdevmajor', 'rdevminor', 'namesize', 'check',
] as const;
export type CpioField = (typeof CPIO_NEWC_FIELDS)[number];
if (CPIO_NEWC_MAGIC.length + CPIO_NEWC_FIELDS.length * 8 !== CPIO_HEADER_SIZE) throw new Error('internal: cpio field table');

/** File type bits of `mode` (sys/stat.h). */
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;

export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; data: Uint8Array; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'chardev'; path: string; major: number; minor: number; mode?: number };

export interface CpioOptions {
  /** Seconds since 1970 written as every entry's mtime (default 0). */
  mtime?: number;
}

const enc = new TextEncoder();

/** "signet/boot.js": relative, '/'-separated, no empty, '.' or '..' parts. */
export function normalizeCpioPath(path: string): string {
  const p = path.replace(/^\/+/, '');
  const parts = p.split('/');
  if (p === '' || parts.some((x) => x === '' || x === '.' || x === '..') || /[\0\n]/.test(p)) {
    throw new DiskError('E_CPIO_ENTRY', `initramfs path ${JSON.stringify(path)} is not a plain relative path`, 'use names like "signet/boot.js"');
  }
  return p;
}

function header(fields: Record<CpioField, number>): string {
  let s = CPIO_NEWC_MAGIC;
  for (const f of CPIO_NEWC_FIELDS) {
    const v = fields[f];
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new DiskError('E_CPIO_ENTRY', `cpio field ${f} = ${v} does not fit 32 bits`, 'keep initramfs files under 4 GiB');
    s += v.toString(16).toUpperCase().padStart(8, '0');
  }
  return s;
}

const pad4 = (n: number) => (4 - (n % 4)) % 4;

/**
 * A newc archive of `entries`. Every parent folder must be an entry too (the kernel does not
 * create missing parents); duplicates are refused.
 */
export function writeCpio(entries: readonly CpioEntry[], options: CpioOptions = {}): Uint8Array {
  const mtime = options.mtime ?? 0;
  const byPath = new Map<string, CpioEntry>();
  for (const e of entries) {
    const p = normalizeCpioPath(e.path);
    if (byPath.has(p)) throw new DiskError('E_CPIO_ENTRY', `initramfs path "${p}" appears twice`, 'give each file one entry');
    byPath.set(p, e);
  }
  const paths = [...byPath.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const p of paths) {
    const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '';
    if (parent && byPath.get(parent)?.type !== 'dir') {
      throw new DiskError('E_CPIO_ENTRY', `initramfs path "${p}" has no folder entry "${parent}"`, 'add the folder as a dir entry');
    }
  }

  const chunks: Uint8Array[] = [];
  let size = 0;
  const push = (b: Uint8Array) => {
    chunks.push(b);
    size += b.length;
  };
  const entry = (name: string, fields: Omit<Record<CpioField, number>, 'namesize' | 'check'>, data: Uint8Array) => {
    const nameBytes = enc.encode(name + '\0');
    const head = enc.encode(header({ ...fields, namesize: nameBytes.length, check: 0 }));
    push(head);
    push(nameBytes);
    push(new Uint8Array(pad4(CPIO_HEADER_SIZE + nameBytes.length)));
    push(data);
    push(new Uint8Array(pad4(data.length)));
  };

  paths.forEach((p, i) => {
    const e = byPath.get(p)!;
    const base = { ino: i + 1, uid: 0, gid: 0, mtime, devmajor: 0, devminor: 0, rdevmajor: 0, rdevminor: 0 };
    switch (e.type) {
      case 'dir':
        entry(p, { ...base, mode: S_IFDIR | (e.mode ?? 0o755), nlink: 2, filesize: 0 }, new Uint8Array(0));
        break;
      case 'file':
        entry(p, { ...base, mode: S_IFREG | (e.mode ?? 0o644), nlink: 1, filesize: e.data.length }, e.data);
        break;
      case 'symlink': {
        const target = enc.encode(e.target);
        entry(p, { ...base, mode: S_IFLNK | 0o777, nlink: 1, filesize: target.length }, target);
        break;
      }
      case 'chardev':
        entry(p, { ...base, mode: S_IFCHR | (e.mode ?? 0o600), nlink: 1, filesize: 0, rdevmajor: e.major, rdevminor: e.minor }, new Uint8Array(0));
        break;
    }
  });
  const zero = { ino: 0, mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, filesize: 0, devmajor: 0, devminor: 0, rdevmajor: 0, rdevminor: 0 };
  entry(CPIO_TRAILER, zero, new Uint8Array(0));
  push(new Uint8Array((CPIO_BLOCK - (size % CPIO_BLOCK)) % CPIO_BLOCK));

  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

export interface CpioReadEntry {
  path: string;
  mode: number;
  mtime: number;
  ino: number;
  rdevmajor: number;
  rdevminor: number;
  data: Uint8Array;
}

/** Reads a newc archive (ours, for tests and `signet run` reports); stops at the trailer. */
export function readCpio(archive: Uint8Array): CpioReadEntry[] {
  const dec = new TextDecoder();
  const out: CpioReadEntry[] = [];
  let off = 0;
  for (;;) {
    if (off + CPIO_HEADER_SIZE > archive.length) throw new DiskError('E_CPIO_ENTRY', 'cpio archive ends inside a header', 'the archive is truncated');
    const head = dec.decode(archive.subarray(off, off + CPIO_HEADER_SIZE));
    if (!head.startsWith(CPIO_NEWC_MAGIC)) throw new DiskError('E_CPIO_ENTRY', `no newc magic at offset ${off}`, 'this is not a newc cpio archive');
    const f = {} as Record<CpioField, number>;
    CPIO_NEWC_FIELDS.forEach((name, i) => {
      const hex = head.slice(6 + i * 8, 14 + i * 8);
      if (!/^[0-9A-Fa-f]{8}$/.test(hex)) throw new DiskError('E_CPIO_ENTRY', `bad ${name} field at offset ${off}`, 'this is not a newc cpio archive');
      f[name] = parseInt(hex, 16);
    });
    const nameStart = off + CPIO_HEADER_SIZE;
    const path = dec.decode(archive.subarray(nameStart, nameStart + f.namesize - 1));
    const dataStart = nameStart + f.namesize + pad4(CPIO_HEADER_SIZE + f.namesize);
    if (dataStart + f.filesize > archive.length) throw new DiskError('E_CPIO_ENTRY', `entry "${path}" runs past the end`, 'the archive is truncated');
    if (path === CPIO_TRAILER) return out;
    out.push({ path, mode: f.mode, mtime: f.mtime, ino: f.ino, rdevmajor: f.rdevmajor, rdevminor: f.rdevminor, data: archive.subarray(dataStart, dataStart + f.filesize) });
    off = dataStart + f.filesize + pad4(f.filesize);
  }
}
