/** A `MetadataStore` in memory: tests, and engines that persist through another layer. ES5-safe. */
import type { MetadataStore } from './client';

export class MemoryMetadataStore implements MetadataStore {
  private files: Record<string, Uint8Array> = {};

  read(name: string): Uint8Array | null {
    return Object.prototype.hasOwnProperty.call(this.files, name) ? this.files[name] : null;
  }

  write(name: string, bytes: Uint8Array): void {
    const copy = new Uint8Array(bytes.length);
    copy.set(bytes);
    this.files[name] = copy;
  }

  remove(name: string): void {
    delete this.files[name];
  }

  names(): string[] {
    return Object.keys(this.files).sort();
  }
}
