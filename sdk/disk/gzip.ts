/**
 * Deterministic gzip for boot images: GNU gzip (`gzip -9 -n`, Debian's essential `gzip`
 * package), whose deflate output depends only on the input and the level — no name, no
 * timestamp (-n), OS byte "Unix" — and has not changed across gzip releases for decades.
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

let versionLine: string | undefined;

function gzipVersion(): string {
  if (versionLine !== undefined) return versionLine;
  const r = spawnSync('gzip', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new DiskError('E_GZIP', `gzip is not installed or failed (${r.error ? r.error.message : `exit ${r.status}`})`, "install Debian's gzip package ('apt-get install gzip')", r.error);
  }
  versionLine = r.stdout.split('\n')[0]!.trim();
  return versionLine;
}

function runGzip(data: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const child = spawn('gzip', [`-${GZIP_LEVEL}`, '-n', '-c'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, GZIP: '' } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => reject(new DiskError('E_GZIP', `cannot run gzip: ${e.message}`, "install Debian's gzip package ('apt-get install gzip')", e)));
    child.on('close', (code) => {
      if (code === 0) resolve(new Uint8Array(Buffer.concat(out)));
      else reject(new DiskError('E_GZIP', `gzip exited with ${code}: ${Buffer.concat(err).toString().trim()}`, 'check the disk space and the gzip installation'));
    });
    child.stdin.on('error', () => {}); // reported by 'close'
    child.stdin.end(data);
  });
}

/** `gzip -9 -n` of `data`: same bytes in, same bytes out. */
export async function gzipDeterministic(data: Uint8Array): Promise<Uint8Array> {
  const version = gzipVersion();
  if (data.length < CACHE_FROM) return runGzip(data);
  const key = createHash('sha256').update(version).update('\0').update(data).digest('hex');
  const path = join(cacheDir(), 'gzip', `${key}-${GZIP_LEVEL}.gz`);
  if (existsSync(path)) {
    const cached = new Uint8Array(readFileSync(path));
    if (isGzip(cached)) return cached;
  }
  const gz = await runGzip(data);
  writeFileAtomic(path, gz);
  return gz;
}
