/**
 * Deterministic gzip for boot images: GNU gzip (`gzip -9 -n`, Debian's essential `gzip`
 * package), whose deflate output depends only on the input and the level — no name, no
 * timestamp (-n), OS byte "Unix" — and has not changed across gzip releases for decades; and,
 * where every byte counts (the arm64 kernel built from source), libdeflate's `libdeflate-gzip -12`
 * (gzipSmallestDeterministic).
 * Node's zlib is not used: its output may vary with the zlib build it was linked with.
 *
 * Large inputs (the kernel) are cached under `<cache>/gzip/<sha256 of input>-9.gz`, keyed also
 * by gzip's version line, because -9 on a 26 MB kernel takes seconds.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/fs-atomic';
import { cacheDir } from '../util/paths';
import { DiskError } from './errors';

export const GZIP_LEVEL = 9;
/** Inputs at least this large are cached on disk. */
const CACHE_FROM = 4 * 1024 * 1024;

export function isGzip(data: Uint8Array): boolean {
  return data.length >= 18 && data[0] === 0x1f && data[1] === 0x8b && data[2] === 0x08;
}

/** Debian's libdeflate-tools: libdeflate's gzip front end. */
const LIBDEFLATE_GZIP = 'libdeflate-gzip';
const GZIP_HINT = "install Debian's gzip package ('apt-get install gzip')";

const versionLines = new Map<string, string>();

/** The first line of `tool`'s version output (part of every cache key). */
function toolVersion(tool: string, args: string[], hint: string): string {
  const known = versionLines.get(tool);
  if (known !== undefined) return known;
  const r = spawnSync(tool, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new DiskError('E_GZIP', `${tool} is not installed or failed (${r.error ? r.error.message : `exit ${r.status}`})`, hint, r.error);
  }
  const line = r.stdout.split('\n')[0]!.trim();
  versionLines.set(tool, line);
  return line;
}

/** `tool args` with `data` on stdin, its stdout. */
function runCompressor(tool: string, args: string[], data: Uint8Array, hint: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, GZIP: '' } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => reject(new DiskError('E_GZIP', `cannot run ${tool}: ${e.message}`, hint, e)));
    child.on('close', (code) => {
      if (code === 0) resolve(new Uint8Array(Buffer.concat(out)));
      else reject(new DiskError('E_GZIP', `${tool} exited with ${code}: ${Buffer.concat(err).toString().trim()}`, `check the disk space and the ${tool} installation`));
    });
    child.stdin.on('error', () => {}); // reported by 'close'
    child.stdin.end(data);
  });
}

/**
 * The smallest gzip member we can make deterministically: libdeflate's `libdeflate-gzip -12`
 * (Debian's libdeflate-tools), fed on stdin so the header has no name and a zero time. About 4 %
 * smaller than `gzip -9` on an arm64 Image (1,839,973 against 1,913,281 bytes), decoded by any
 * inflater (U-Boot's gunzip included), and as deterministic: its output depends on the input, the
 * level and libdeflate's version, which keys the cache like gzipDeterministic's.
 */
export async function gzipSmallestDeterministic(data: Uint8Array): Promise<Uint8Array> {
  const version = toolVersion(LIBDEFLATE_GZIP, ['-V'], "install Debian's libdeflate-tools package ('apt-get install libdeflate-tools')");
  const key = createHash('sha256').update(version).update('\0').update(data).digest('hex');
  const path = join(cacheDir(), 'gzip', `${key}-libdeflate12.gz`);
  if (data.length >= CACHE_FROM && existsSync(path)) {
    const cached = new Uint8Array(readFileSync(path));
    if (isGzip(cached)) return cached;
  }
  const gz = await runCompressor(LIBDEFLATE_GZIP, ['-12', '-c'], data, "install Debian's libdeflate-tools package ('apt-get install libdeflate-tools')");
  if (data.length >= CACHE_FROM) writeFileAtomic(path, gz);
  return gz;
}

/** `gzip -9 -n` of `data`: same bytes in, same bytes out. */
export async function gzipDeterministic(data: Uint8Array): Promise<Uint8Array> {
  const version = toolVersion('gzip', ['--version'], GZIP_HINT);
  if (data.length < CACHE_FROM) return runCompressor('gzip', [`-${GZIP_LEVEL}`, '-n', '-c'], data, GZIP_HINT);
  const key = createHash('sha256').update(version).update('\0').update(data).digest('hex');
  const path = join(cacheDir(), 'gzip', `${key}-${GZIP_LEVEL}.gz`);
  if (existsSync(path)) {
    const cached = new Uint8Array(readFileSync(path));
    if (isGzip(cached)) return cached;
  }
  const gz = await runCompressor('gzip', [`-${GZIP_LEVEL}`, '-n', '-c'], data, GZIP_HINT);
  writeFileAtomic(path, gz);
  return gz;
}
