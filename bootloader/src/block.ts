/**
 * The flash as the boot stage sees it: whole sectors, read/write/flush. Implementations:
 * `block-native.ts` (a device node or file through the C host), `block-file.ts` (Node, for
 * simulated devices) and `block-sim.ts` (a test double that cuts power and flips bits).
 */
export interface BlockDevice {
  readonly sectorSize: number;
  readonly sectorCount: number;
  /**
   * Bytes the medium erases at once when larger than a sector (NOR behind mtdblock: a write to
   * any sector erases and reprograms its whole block), so a cut write can wipe its neighbours;
   * absent or equal to sectorSize on sector-atomic media (eMMC with reliable write).
   */
  readonly eraseBlockSize?: number;
  /** Read `count` whole sectors starting at `sector`. */
  read(sector: number, count: number): Uint8Array;
  /** Write whole sectors; `data.length` is a multiple of sectorSize. */
  write(sector: number, data: Uint8Array): void;
  flush(): void;
}

/** A partition: a window of a larger device, addressed from its own sector 0. */
export class PartitionDevice implements BlockDevice {
  readonly sectorSize: number;
  readonly sectorCount: number;
  readonly eraseBlockSize?: number;
  private readonly dev: BlockDevice;
  private readonly first: number;

  constructor(dev: BlockDevice, offsetBytes: number, sizeBytes: number) {
    if (offsetBytes % dev.sectorSize !== 0 || sizeBytes % dev.sectorSize !== 0) {
      throw new Error('partition at ' + offsetBytes + '+' + sizeBytes + ' is not sector-aligned');
    }
    this.dev = dev;
    this.sectorSize = dev.sectorSize;
    if (dev.eraseBlockSize) this.eraseBlockSize = dev.eraseBlockSize;
    this.first = offsetBytes / dev.sectorSize;
    this.sectorCount = sizeBytes / dev.sectorSize;
    if (this.first + this.sectorCount > dev.sectorCount) throw new Error('partition ends past the device');
  }

  read(sector: number, count: number): Uint8Array {
    this.check(sector, count);
    return this.dev.read(this.first + sector, count);
  }

  write(sector: number, data: Uint8Array): void {
    this.check(sector, data.length / this.sectorSize);
    this.dev.write(this.first + sector, data);
  }

  flush(): void {
    this.dev.flush();
  }

  private check(sector: number, count: number): void {
    if (sector < 0 || count < 0 || Math.floor(count) !== count || sector + count > this.sectorCount) {
      throw new Error('access to sectors ' + sector + '+' + count + ' outside a partition of ' + this.sectorCount);
    }
  }
}

/**
 * Sectors per erase block: 1 on sector-atomic media. Areas that must survive each other's cut
 * writes (state copies, chain areas, config copies) start on their own erase block.
 */
export function eraseSectors(dev: BlockDevice): number {
  const e = dev.eraseBlockSize;
  return e && e > dev.sectorSize ? Math.floor(e / dev.sectorSize) : 1;
}

/** Read `length` bytes from byte offset 0 of a device (rounding up to whole sectors). */
export function readBytes(dev: BlockDevice, offset: number, length: number): Uint8Array {
  const s = Math.floor(offset / dev.sectorSize);
  const end = Math.ceil((offset + length) / dev.sectorSize);
  const b = dev.read(s, end - s);
  const start = offset - s * dev.sectorSize;
  return b.subarray(start, start + length);
}

/** Write bytes at sector 0, padding the last sector with 0xff (erased flash). */
export function writeBytesPadded(dev: BlockDevice, data: Uint8Array): void {
  const sectors = Math.ceil(data.length / dev.sectorSize);
  const buf = new Uint8Array(sectors * dev.sectorSize);
  for (let i = data.length; i < buf.length; i++) buf[i] = 0xff;
  buf.set(data, 0);
  dev.write(0, buf);
}
