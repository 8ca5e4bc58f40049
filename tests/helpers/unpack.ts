/**
 * Unpacks what a boot image stores (tests only): gzip with Node's zlib, xz and lzma with the `xz`
 * CLI, zstd with the `zstd` CLI (a separate implementation from the one that packed it would be
 * better still, but these are the reference decoders of their formats).
 */
import { spawnSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';

/** An xz stream's magic (FD '7zXZ' 00). */
export const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] as const;

function xzDecode(format: 'xz' | 'lzma', data: Uint8Array): Buffer {
  const r = spawnSync('xz', [`--format=${format}`, '-dc'], { input: data, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`xz --format=${format} -d failed: ${r.stderr?.toString().trim()}`);
  return r.stdout;
}

/** A zstd frame's magic (28 B5 2F FD). */
export const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd] as const;

function zstdDecode(data: Uint8Array): Buffer {
  const r = spawnSync('zstd', ['-dc'], { input: data, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`zstd -d failed: ${r.stderr?.toString().trim()}`);
  return r.stdout;
}

/** `data` unpacked as `how` says ("none", "gzip", "xz", "lzma", "zstd"). */
export function unpack(how: string, data: Uint8Array): Buffer {
  if (how === 'none') return Buffer.from(data);
  if (how === 'gzip') return gunzipSync(data);
  if (how === 'xz' || how === 'lzma') return xzDecode(how, data);
  if (how === 'zstd') return zstdDecode(data);
  throw new Error(`unknown compression ${how}`);
}

/** A FIT ramdisk (declared "none": the kernel unpacks it) by its magic: zstd, xz, gzip or a plain cpio. */
export function unpackRamdisk(data: Uint8Array): Buffer {
  if (ZSTD_MAGIC.every((b, i) => data[i] === b)) {
    // fitRamdisk pads to a multiple of 4 with zeros, which the kernel skips and the zstd CLI
    // refuses after the frame: the frame is the longest of the last 0 to 3 zero bytes removed that unpacks.
    for (let pad = 0; pad < 4 && (pad === 0 || data[data.length - pad] === 0); pad++) {
      try {
        return unpack('zstd', data.subarray(0, data.length - pad));
      } catch (e) {
        if (pad === 3 || data[data.length - pad - 1] !== 0) throw e;
      }
    }
  }
  if (XZ_MAGIC.every((b, i) => data[i] === b)) return unpack('xz', data);
  if (data[0] === 0x1f && data[1] === 0x8b) return unpack('gzip', data);
  return Buffer.from(data);
}
