/**
 * Atomic output: write to a temp file in the same folder, fsync, rename over the target.
 * A crash or an error leaves either the old file or the new one, never a partial file.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

export function tempPathFor(path: string): string {
  return join(dirname(path), '.signet-tmp-' + basename(path) + '-' + randomBytes(4).toString('hex'));
}

export function writeFileAtomic(path: string, data: Uint8Array | string, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  let fd = -1;
  try {
    fd = openSync(tmp, 'wx', mode);
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Build a whole folder under a temp name, then rename it into place, so a failed
 * `keys init` or `init` leaves nothing behind. `fill` receives the temp folder.
 */
export async function createDirAtomic(path: string, fill: (tmpDir: string) => Promise<void> | void): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  mkdirSync(tmp, { mode: 0o700 });
  try {
    await fill(tmp);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
