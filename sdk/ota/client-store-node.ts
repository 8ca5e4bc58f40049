/**
 * A `MetadataStore` in a folder on Node (simulated devices, a Linux guest with a writable
 * partition): one file per name, replaced atomically (temp file, fsync, rename).
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureOutputFolder, writeFileAtomic } from '../util/fs-atomic';
import type { MetadataStore } from './client';

const SAFE_NAME = /^[a-z0-9][a-z0-9._-]*$/;

export class DirMetadataStore implements MetadataStore {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
    ensureOutputFolder(dir, 0o700);
  }

  private path(name: string): string {
    if (!SAFE_NAME.test(name)) throw new Error('bad metadata store name ' + JSON.stringify(name));
    return join(this.dir, name);
  }

  read(name: string): Uint8Array | null {
    const p = this.path(name);
    if (!existsSync(p)) return null;
    return new Uint8Array(readFileSync(p));
  }

  write(name: string, bytes: Uint8Array): void {
    writeFileAtomic(this.path(name), bytes, 0o600);
  }

  remove(name: string): void {
    rmSync(this.path(name), { force: true });
  }
}
