/**
 * Target blobs in a folder, by SHA-256: `blobs/ab/abcdef…`. An upload streams into
 * `blobs/.incoming/`, is hashed as it arrives, fsynced, and renamed into place only when its
 * length and hash match; a killed server leaves at most a temp file, which `recover` removes.
 * Folders are 0700 and blob files 0600 whatever the umask (the data folder is the server's alone).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rename, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { ServerError } from './errors';
import type { BlobCheck, BlobStore } from './storage';

const SHA256 = /^[0-9a-f]{64}$/;

export class BlobFolder implements BlobStore {
  private readonly incoming: string;

  constructor(private readonly dir: string) {
    this.incoming = join(dir, '.incoming');
  }

  async init(): Promise<void> {
    await mkdir(this.incoming, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    await chmod(this.incoming, 0o700);
  }

  private pathOf(sha256: string): string {
    if (!SHA256.test(sha256)) throw new ServerError('E_BAD_REQUEST', 'not a SHA-256: ' + sha256.slice(0, 80));
    return join(this.dir, sha256.slice(0, 2), sha256);
  }

  async put(sha256: string, length: number, body: AsyncIterable<Uint8Array>, check?: BlobCheck): Promise<'stored' | 'existed'> {
    const final = this.pathOf(sha256);
    const existed = (await this.stat(sha256)) !== null;
    const hash = createHash('sha256');
    let n = 0;
    const tmp = join(this.incoming, sha256 + '-' + randomBytes(6).toString('hex'));
    // An existing blob is content-addressed: the bytes are hashed and dropped, not rewritten.
    const fh = existed ? null : await open(tmp, 'wx', 0o600);
    try {
      for await (const chunk of body) {
        n += chunk.length;
        // The cap is enforced while streaming, never after buffering.
        if (n > length) throw new ServerError('E_UPLOAD_MISMATCH', `upload is longer than the announced ${length} bytes`);
        hash.update(chunk);
        if (fh) {
          let off = 0;
          while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
        }
      }
      if (n !== length) throw new ServerError('E_UPLOAD_MISMATCH', `upload ended after ${n} of ${length} bytes`);
      const got = hash.digest('hex');
      if (got !== sha256) throw new ServerError('E_UPLOAD_MISMATCH', `uploaded bytes hash to ${got.slice(0, 16)}…, not ${sha256.slice(0, 16)}…`);
      if (!fh) {
        // Held bytes uploaded again are about to be published: restart the collector's grace period.
        const now = new Date();
        await utimes(final, now, now).catch(() => undefined);
        return 'existed';
      }
      await fh.sync();
      await fh.close();
      if (check) await check(await readFile(tmp));
      await mkdir(join(this.dir, sha256.slice(0, 2)), { recursive: true, mode: 0o700 });
      await rename(tmp, final);
      await syncDir(join(this.dir, sha256.slice(0, 2)));
      return 'stored';
    } catch (e) {
      if (fh) {
        await fh.close().catch(() => undefined);
        await rm(tmp, { force: true });
      }
      throw e;
    }
  }

  async stat(sha256: string): Promise<{ length: number } | null> {
    try {
      const st = await stat(this.pathOf(sha256));
      return { length: st.size };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  read(sha256: string, start: number, end: number): AsyncIterable<Uint8Array> {
    return createReadStream(this.pathOf(sha256), { start, end, highWaterMark: 1024 * 1024 });
  }

  async readAll(sha256: string): Promise<Uint8Array> {
    return new Uint8Array(await readFile(this.pathOf(sha256)));
  }

  async list(): Promise<{ sha256: string; length: number; storedAt: number }[]> {
    const out: { sha256: string; length: number; storedAt: number }[] = [];
    for (const sub of await readdir(this.dir)) {
      if (!/^[0-9a-f]{2}$/.test(sub)) continue;
      for (const name of await readdir(join(this.dir, sub))) {
        if (!SHA256.test(name) || name.slice(0, 2) !== sub) continue;
        const st = await stat(join(this.dir, sub, name)).catch(() => null);
        if (st?.isFile()) out.push({ sha256: name, length: st.size, storedAt: Math.floor(st.mtimeMs / 1000) });
      }
    }
    return out;
  }

  async remove(sha256: string): Promise<void> {
    await rm(this.pathOf(sha256), { force: true });
  }

  /** Make every folder 0700 and every file 0600 (a data folder from before, or copied in). */
  async fixModes(): Promise<void> {
    const walk = async (dir: string): Promise<void> => {
      await chmod(dir, 0o700);
      for (const e of await readdir(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile()) await chmod(p, 0o600);
      }
    };
    await walk(this.dir);
  }

  async recover(): Promise<{ removed: number }> {
    await this.init();
    const left = await readdir(this.incoming);
    for (const f of left) await rm(join(this.incoming, f), { force: true, recursive: true });
    await this.fixModes();
    return { removed: left.length };
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
