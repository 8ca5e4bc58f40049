/** A disk image file (or a block device node) through Node's fs: simulated devices, tools. */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import type { BlockDevice } from './block';

export class FileBlockDevice implements BlockDevice {
  readonly sectorSize: number;
  readonly sectorCount: number;
  /** The board's flash.eraseBlockSize: the state partition's writers lay out by it (block.ts). */
  readonly eraseBlockSize?: number;
  private fd: number;

  constructor(path: string, sectorSize = 512, writable = true, eraseBlockSize?: number) {
    this.fd = openSync(path, writable ? 'r+' : 'r');
    this.sectorSize = sectorSize;
    if (eraseBlockSize) this.eraseBlockSize = eraseBlockSize;
    this.sectorCount = Math.floor(fstatSync(this.fd).size / sectorSize);
  }

  read(sector: number, count: number): Uint8Array {
    const b = new Uint8Array(count * this.sectorSize);
    let got = 0;
    while (got < b.length) {
      const n = readSync(this.fd, b, got, b.length - got, sector * this.sectorSize + got);
      if (n === 0) throw new Error(`short read at sector ${sector}`);
      got += n;
    }
    return b;
  }

  write(sector: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) done += writeSync(this.fd, data, done, data.length - done, sector * this.sectorSize + done);
  }

  flush(): void {
    fsyncSync(this.fd);
  }

  close(): void {
    closeSync(this.fd);
  }
}
