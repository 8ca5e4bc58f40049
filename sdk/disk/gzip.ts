/**
 * Deterministic gzip for boot images: GNU gzip (`gzip -9 -n`, Debian's essential `gzip`
 * package), whose deflate output depends only on the input and the level — no name, no
 * timestamp (-n), OS byte "Unix" — and has not changed across gzip releases for decades; and,
 * where every byte counts (the arm64 kernel built from source), libdeflate's `libdeflate-gzip -12`
 * (gzipSmallestDeterministic).
 * Node's zlib is not used: its output may vary with the zlib build it was linked with.
 *
 * Large inputs (the kernel) are cached under `<cache>/gzip/<sha256 of input>-9.gz` (libdeflate's:
 * `-libdeflate12.gz`), keyed also by the tool's version line, because -9 on a 26 MB kernel takes
 * seconds. The tools run through compress.ts's packer runner, as xz and zstd do.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { cacheDir } from '../util/paths';
import { cachedPack, packerVersion, runPacker } from './compress';

export const GZIP_LEVEL = 9;
/** Inputs at least this large are cached on disk. */
const CACHE_FROM = 4 * 1024 * 1024;

export function isGzip(data: Uint8Array): boolean {
  return data.length >= 18 && data[0] === 0x1f && data[1] === 0x8b && data[2] === 0x08;
}

/** Debian's libdeflate-tools: libdeflate's gzip front end. */
const LIBDEFLATE_GZIP = 'libdeflate-gzip';
const GZIP_HINT = "install Debian's gzip package ('apt-get install gzip')";
const LIBDEFLATE_HINT = "install Debian's libdeflate-tools package ('apt-get install libdeflate-tools')";
const GZIP_ARGS = [`-${GZIP_LEVEL}`, '-n', '-c'];

/**
 * `tool args` of `data`, cached under `<cache>/gzip/<sha256 of the tool's version and the
 * input><suffix>` when the input is large.
 */
async function gzipWith(tool: string, versionArgs: string[], args: string[], suffix: string, hint: string, data: Uint8Array): Promise<Uint8Array> {
  const version = packerVersion(tool, versionArgs, 'E_GZIP', hint);
  const pack = () => runPacker(tool, args, data, 'E_GZIP', hint);
  if (data.length < CACHE_FROM) return pack();
  const key = createHash('sha256').update(version).update('\0').update(data).digest('hex');
  return cachedPack(join(cacheDir(), 'gzip', `${key}${suffix}`), isGzip, pack);
}

/**
 * The smallest gzip member we can make deterministically: libdeflate's `libdeflate-gzip -12`
 * (Debian's libdeflate-tools), fed on stdin so the header has no name and a zero time. About 4 %
 * smaller than `gzip -9` on an arm64 Image (1,839,973 against 1,913,281 bytes), decoded by any
 * inflater (U-Boot's gunzip included), and as deterministic: its output depends on the input, the
 * level and libdeflate's version, which keys the cache like gzipDeterministic's.
 */
export function gzipSmallestDeterministic(data: Uint8Array): Promise<Uint8Array> {
  return gzipWith(LIBDEFLATE_GZIP, ['-V'], ['-12', '-c'], '-libdeflate12.gz', LIBDEFLATE_HINT, data);
}

/** `gzip -9 -n` of `data`: same bytes in, same bytes out. */
export function gzipDeterministic(data: Uint8Array): Promise<Uint8Array> {
  return gzipWith('gzip', ['--version'], GZIP_ARGS, `-${GZIP_LEVEL}.gz`, GZIP_HINT, data);
}
