/**
 * Deterministic LZMA, xz and zstd for boot images, with the `xz` CLI (Debian's xz-utils, which
 * `.ci/setup` installs; the kernel source tarball needs it too) and the `zstd` CLI (Debian's zstd):
 *
 * - `lzma` — the arm64 kernel Image as the FIT stores it (`compression = "lzma"`). U-Boot's bootm
 *   (lib/lzma, `lzmaBuffToBuffDecompress`) takes the "LZMA alone" format: 5 property bytes, the
 *   64-bit uncompressed size (all ones = unknown, the stream then ends with an end marker, as
 *   Linux's own `cmd_lzma` writes it), then the raw stream. `xz --format=lzma -9e` with
 *   `lc=2,lp=2,pb=2` (the literal and position contexts of 4-byte aligned arm64 code: 1.8 % smaller
 *   than -9e's lc=3,lp=0,pb=2, the same decoder); about a quarter smaller than gzip -9.
 * - `xz` — the initramfs when the kernel unpacks xz (CONFIG_RD_XZ=y). The kernel's decoder
 *   (lib/xz) knows only the CRC32 and "none" checks: `--check=none`, since the FIT's signed sha256
 *   (checked by U-Boot before the kernel runs) already covers every byte of the stream, and the
 *   kernel's CRC32 was ~6 % of its unpacking (docs/kernel.md);
 *   and it allocates the dictionary the header names while it unpacks the initramfs, so the
 *   dictionary is the input's size rounded up to a power of two (at least 1 MiB) rather than -9's
 *   64 MiB: the same output (a dictionary larger than the input cannot help) in a guest with
 *   32 MiB of RAM. Preset 6 (-9 is preset 6 with a larger dictionary) rather than -9e: as fast
 *   here and slightly smaller (measured on the 2.4 MB initramfs: 914,056 against 915,128 bytes,
 *   1.2 s of CPU either way; gzip -9: 1,178,222 bytes, 0.3 s).
 *
 * - `zstd` — the initramfs when the kernel unpacks zstd (CONFIG_RD_ZSTD=y, qemu-virt-arm64): the
 *   kernel's decoder runs about a quarter of xz's instructions for the same output (under
 *   emulation xz was most of the kernel's boot work; docs/kernel.md) at 13 % more bytes.
 *   `zstd --ultra -22 --no-check`: no checksum, for the same reason as xz's `--check=none`; the
 *   input's size given (`--stream-size`), so the frame is one segment whose window is the input's
 *   size, which is what the kernel allocates while it unpacks (the CLI's -22 would otherwise name
 *   a 128 MiB window on a pipe).
 *
 * Same bytes in, same bytes out: single-threaded (`-T1`, zstd's `--single-thread`), no file name
 * or time in any format, `XZ_DEFAULTS`/`XZ_OPT` and `ZSTD_CLEVEL`/`ZSTD_NBTHREADS` cleared. The encoder's output could change between xz releases, so the
 * kernel's lzma is cached under `<cache>/xz/` keyed by the Image's sha256, the options and xz's
 * version line, like gzip.ts (the initramfs, different for every key set, is not).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/fs-atomic';
import { cacheDir } from '../util/paths';
import { DiskError } from './errors';

/** Inputs at least this large are cached on disk (-9e on a 5 MB Image takes seconds). */
const CACHE_FROM = 1024 * 1024;
const MIB = 1024 * 1024;
const INSTALL = "install Debian's xz-utils package ('apt-get install xz-utils')";

const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];

/** An xz stream (its 6-byte magic). */
export function isXz(data: Uint8Array): boolean {
  return data.length >= 32 && XZ_MAGIC.every((b, i) => data[i] === b);
}

/**
 * An "LZMA alone" stream: 13 header bytes whose properties byte is valid (lc/lp/pb:
 * (pb * 5 + lp) * 9 + lc < 225) and whose dictionary size is one xz writes (2^n or 2^n + 2^(n-1)),
 * plus at least the 5-byte range-coder start. The format has no magic; this is what xz's own
 * `.lzma` detection checks.
 */
export function isLzmaAlone(data: Uint8Array): boolean {
  if (data.length < 18 || data[0]! >= 225) return false;
  const dict = (data[1]! | (data[2]! << 8) | (data[3]! << 16) | (data[4]! << 24)) >>> 0;
  const pow2 = (n: number) => n > 0 && Number.isInteger(Math.log2(n));
  return dict === 0xffffffff || pow2(dict) || (dict % 3 === 0 && pow2(dict / 3));
}

/** The packers' error codes (sdk/disk/errors.ts). */
export type PackerCode = 'E_GZIP' | 'E_XZ' | 'E_ZSTD';

const versionLines = new Map<string, string>();

/** The first line of `cmd`'s version output (part of the cache keys); `code` when it cannot run. */
export function packerVersion(cmd: string, args: readonly string[], code: PackerCode, install: string): string {
  const known = versionLines.get(cmd);
  if (known !== undefined) return known;
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new DiskError(code, `${cmd} is not installed or failed (${r.error ? r.error.message : `exit ${r.status}`})`, install, r.error);
  }
  const line = r.stdout.split('\n')[0]!.trim();
  versionLines.set(cmd, line);
  return line;
}

function xzVersion(): string {
  return packerVersion('xz', ['--version'], 'E_XZ', INSTALL);
}

function runXz(args: readonly string[], data: Uint8Array): Promise<Uint8Array> {
  return runPacker('xz', [...args, '-T1', '-c'], data, 'E_XZ', INSTALL);
}

/** Runs a packer CLI on `data` (stdin to stdout) with its environment defaults cleared. */
export function runPacker(cmd: string, args: readonly string[], data: Uint8Array, code: PackerCode, install: string): Promise<Uint8Array> {
  const env = { ...process.env };
  for (const v of ['GZIP', 'XZ_DEFAULTS', 'XZ_OPT', 'ZSTD_CLEVEL', 'ZSTD_NBTHREADS']) delete env[v];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => reject(new DiskError(code, `cannot run ${cmd}: ${e.message}`, install, e)));
    child.on('close', (status) => {
      if (status === 0) resolve(new Uint8Array(Buffer.concat(out)));
      else reject(new DiskError(code, `${cmd} ${args.join(' ')} exited with ${status}: ${Buffer.concat(err).toString().trim().split('\n')[0]}`, `check the input, the disk space and the ${cmd} installation`));
    });
    child.stdin.on('error', () => {}); // reported by 'close'
    child.stdin.end(data);
  });
}

/**
 * `pack()`'s output for `data`, kept at `path` (which the caller derives from the packer's version,
 * its options and the input) and taken from there next time when it passes `valid`.
 */
export async function cachedPack(path: string, valid: (d: Uint8Array) => boolean, pack: () => Promise<Uint8Array>): Promise<Uint8Array> {
  if (existsSync(path)) {
    const hit = new Uint8Array(readFileSync(path));
    if (valid(hit)) return hit;
  }
  const packed = await pack();
  writeFileAtomic(path, packed);
  return packed;
}

async function cached(args: readonly string[], data: Uint8Array, suffix: string, valid: (d: Uint8Array) => boolean): Promise<Uint8Array> {
  const version = xzVersion();
  if (data.length < CACHE_FROM) return runXz(args, data);
  const key = createHash('sha256').update(version).update('\0').update(args.join(' ')).update('\0').update(data).digest('hex');
  return cachedPack(join(cacheDir(), 'xz', `${key}.${suffix}`), valid, () => runXz(args, data));
}

export const LZMA_ARGS = ['--format=lzma', '--lzma1=preset=9e,lc=2,lp=2,pb=2'] as const;

/** `xz --format=lzma -9e` (lc=2,lp=2,pb=2) of `data` (what a FIT's `compression = "lzma"` holds). */
export function lzmaDeterministic(data: Uint8Array): Promise<Uint8Array> {
  return cached(LZMA_ARGS, data, 'lzma', isLzmaAlone);
}

/** The xz dictionary for `bytes` of input: the next power of two, at least 1 MiB. */
export function xzDictBytes(bytes: number): number {
  let d = MIB;
  while (d < bytes) d *= 2;
  return d;
}

/** `xz --check=none -6` with a dictionary sized to the input (what the kernel's lib/xz unpacks). */
export function xzDeterministic(data: Uint8Array): Promise<Uint8Array> {
  xzVersion();
  return runXz(['--format=xz', '--check=none', `--lzma2=preset=6,dict=${xzDictBytes(data.length) / MIB}MiB`], data);
}

const ZSTD_INSTALL = "install Debian's zstd package ('apt-get install zstd')";
/** A zstd frame's magic (28 B5 2F FD). */
export const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd] as const;

export function isZstd(data: Uint8Array): boolean {
  return data.length >= 8 && ZSTD_MAGIC.every((b, i) => data[i] === b);
}

/**
 * `zstd --ultra -22 --no-check` of `data` as one frame with its size (what the kernel's
 * lib/decompress_unzstd unpacks with a window of the input's size).
 */
export function zstdDeterministic(data: Uint8Array): Promise<Uint8Array> {
  return runPacker('zstd', ['-q', '-c', '--ultra', '-22', '--no-check', '--single-thread', '--no-progress', `--stream-size=${data.length}`], data, 'E_ZSTD', ZSTD_INSTALL);
}

/** Unpacks an LZMA alone stream (e.g. a FIT's lzma kernel, for QEMU's -kernel, which takes only raw or gzip). */
export function unlzma(data: Uint8Array): Promise<Uint8Array> {
  xzVersion();
  return runXz(['--format=lzma', '-d'], data);
}
