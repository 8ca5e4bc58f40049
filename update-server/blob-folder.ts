/**
 * Target blobs in a folder, by SHA-256: `blobs/ab/abcdef…`. An upload streams into
 * `blobs/.incoming/`, is hashed as it arrives, fsynced, and renamed into place only when its
 * length and hash match; a killed server leaves at most a temp file, which `recover` removes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ServerError } from './errors';
import type { BlobStore } from './storage';

const SHA256 = /^[0-9a-f]{64}$/;

export class BlobFolder implements BlobStore {
  private readonly incoming: string;

  constructor(private readonly dir: string) {
    this.incoming = join(dir, '.incoming');
  }

  async init(): Promise<void> {
    await mkdir(this.incoming, { recursive: true });
  }

  private pathOf(sha256: string): string {
    if (!SHA256.test(sha256)) throw new ServerError('E_BAD_REQUEST', 'not a SHA-256: ' + sha256.slice(0, 80));
    return join(this.dir, sha256.slice(0, 2), sha256);
  }

  async put(sha256: string, length: number, body: AsyncIterable<Uint8Array>): Promise<'stored' | 'existed'> {
    const final = this.pathOf(sha256);
    const existed = (await this.stat(sha256)) !== null;
    const hash = createHash('sha256');
    let n = 0;
    const tmp = join(this.incoming, sha256 + '-' + randomBytes(6).toString('hex'));
    // An existing blob is content-addressed: the bytes are hashed and dropped, not rewritten.
    const fh = existed ? null : await open(tmp, 'wx', 0o644);
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
      if (!fh) return 'existed';
      await fh.sync();
      await fh.close();
      await mkdir(join(this.dir, sha256.slice(0, 2)), { recursive: true });
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

  async recover(): Promise<{ removed: number }> {
    await this.init();
    const left = await readdir(this.incoming);
    for (const f of left) await rm(join(this.incoming, f), { force: true, recursive: true });
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
