/**
 * Debian source packages pinned by the sha256 of each file (`.dsc`, then the tarballs it names),
 * as Xen (sdk/xen/source.ts) and the device's C libraries (bootloader/native/sources.ts) are
 * built: downloaded once from a deb.debian.org pool folder into a cache folder, every file (cached
 * or fresh) checked against its pin before use — a file that does not match is not kept — then
 * unpacked with Debian's patches applied (`dpkg-source -x`) into a build's own folder.
 *
 * Callers name their own errors: `fail` turns what went wrong into the caller's coded error.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../kernel/source';

export interface PinnedFile {
  name: string;
  sha256: string;
  bytes: number;
}

/** What went wrong: a file that is not its pin, a download, or the unpack. */
export type PinnedSourceFailure = 'mismatch' | 'download' | 'unpack';

/** Builds the caller's error for a failure (its code, message and hint). */
export type PinnedSourceError = (kind: PinnedSourceFailure, message: string, cause?: unknown) => Error;

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Checks bytes against their pin (digest and length). */
export function checkPinnedFile(file: PinnedFile, bytes: Uint8Array, from: string, fail: PinnedSourceError): void {
  const got = sha256(bytes);
  if (got !== file.sha256 || bytes.length !== file.bytes) {
    throw fail('mismatch', `${file.name} from ${from} has sha256 ${got} (${bytes.length} bytes), not the pinned ${file.sha256}`);
  }
}

async function download(url: string, fail: PinnedSourceError): Promise<Uint8Array> {
  if (url.startsWith('file://')) {
    try {
      return new Uint8Array(await readFile(new URL(url)));
    } catch (cause) {
      throw fail('download', `cannot read ${url}: ${(cause as Error).message}`, cause);
    }
  }
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'follow' });
  } catch (cause) {
    throw fail('download', `cannot download ${url}: ${(cause as Error).message}`, cause);
  }
  if (!res.ok) throw fail('download', `cannot download ${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** The pinned files in `dir`, downloaded from `baseUrl` + name and checked when missing; returns `dir`. */
export async function fetchPinnedFiles(files: readonly PinnedFile[], dir: string, baseUrl: string, fail: PinnedSourceError): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const f of files) {
    const path = join(dir, f.name);
    if (existsSync(path)) {
      checkPinnedFile(f, await readFile(path), path, fail);
      continue;
    }
    const bytes = await download(baseUrl + encodeURIComponent(f.name).replace(/%2B/g, '+'), fail);
    checkPinnedFile(f, bytes, baseUrl, fail);
    const tmp = `${path}.${process.pid}-${randomBytes(4).toString('hex')}`;
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  }
  return dir;
}

/**
 * Unpacks the checked source package whose .dsc is `dsc` into `into` (which must not exist),
 * Debian's patches applied; `marker` is a file the tree must then have.
 */
export async function unpackPinnedSource(dsc: string, into: string, marker: string, fail: PinnedSourceError): Promise<void> {
  // The files were checked against their pins; the .dsc's own signature adds nothing.
  const r = await run('dpkg-source', ['--no-check', '--no-copy', '-x', dsc, into], { env: { ...process.env, LC_ALL: 'C' } });
  if (r.code !== 0 || !existsSync(join(into, marker))) {
    await rm(into, { recursive: true, force: true });
    throw fail('unpack', `dpkg-source could not unpack ${dsc}: ${(r.stderr || r.stdout).trim().split('\n').pop() ?? ''}`);
  }
}
