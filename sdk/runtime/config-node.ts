/**
 * The config store under Node (tests, `signet run --engine node`): the same store and format
 * as on a device (bootloader/src/configstore.ts), in the file named by SIGNET_CONFIG_FILE (two
 * 8 KiB areas, created zeroed), or in memory when it is unset. Node's fs comes from
 * process.getBuiltinModule, so a device bundle never touches it.
 */
import type { BlockDevice } from '../../bootloader/src/block';
import { ConfigStore, configSectors, fileConfigAreas } from '../../bootloader/src/configstore';
import type { HostConfig } from './config-types';

interface NodeFs {
  openSync(path: string, flags: string): number;
  fstatSync(fd: number): { size: number };
  ftruncateSync(fd: number, len: number): void;
  readSync(fd: number, b: Uint8Array, off: number, len: number, pos: number): number;
  writeSync(fd: number, b: Uint8Array, off: number, len: number, pos: number): number;
  fsyncSync(fd: number): void;
}
declare const process: { getBuiltinModule?(name: string): unknown; env?: Record<string, string | undefined> } | undefined;

const SECTOR = 512;

class MemoryDevice implements BlockDevice {
  readonly sectorSize = SECTOR;
  readonly sectorCount: number;
  private readonly b: Uint8Array;
  constructor(sectors: number) {
    this.sectorCount = sectors;
    this.b = new Uint8Array(sectors * SECTOR);
  }
  read(sector: number, count: number): Uint8Array {
    // A copy without Uint8Array.prototype.slice, which the device engines lack.
    const out = new Uint8Array(count * SECTOR);
    out.set(this.b.subarray(sector * SECTOR, (sector + count) * SECTOR));
    return out;
  }
  write(sector: number, data: Uint8Array): void {
    this.b.set(data, sector * SECTOR);
  }
  flush(): void {}
}

class FileDevice implements BlockDevice {
  readonly sectorSize = SECTOR;
  readonly sectorCount: number;
  constructor(private readonly fs: NodeFs, private readonly fd: number, sectors: number) {
    this.sectorCount = sectors;
    if (fs.fstatSync(fd).size < sectors * SECTOR) fs.ftruncateSync(fd, sectors * SECTOR);
  }
  read(sector: number, count: number): Uint8Array {
    const b = new Uint8Array(count * SECTOR);
    let got = 0;
    while (got < b.length) {
      const n = this.fs.readSync(this.fd, b, got, b.length - got, sector * SECTOR + got);
      if (n === 0) break;
      got += n;
    }
    return b;
  }
  write(sector: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) done += this.fs.writeSync(this.fd, data, done, data.length - done, sector * SECTOR + done);
  }
  flush(): void {
    this.fs.fsyncSync(this.fd);
  }
}

/** The store for this Node process; null outside Node. */
export function nodeConfig(): HostConfig | null {
  if (typeof process === 'undefined' || !process || typeof process.getBuiltinModule !== 'function') return null;
  const sectors = 2 * configSectors(SECTOR);
  const path = process.env && process.env.SIGNET_CONFIG_FILE;
  let dev: BlockDevice;
  if (path) {
    const fs = process.getBuiltinModule('node:fs') as NodeFs;
    let fd: number;
    try {
      fd = fs.openSync(path, 'r+');
    } catch {
      fd = fs.openSync(path, 'w+');
    }
    dev = new FileDevice(fs, fd, sectors);
  } else dev = new MemoryDevice(sectors);
  const store = new ConfigStore(dev, fileConfigAreas(SECTOR));
  return {
    get: (key) => store.get(key),
    set: (key, value) => store.set(key, value),
    delete: (key) => store.delete(key),
    keys: () => store.keys(),
    file: (name) => store.text('file', name),
    secret: (name) => store.text('secret', name),
  };
}
