/**
 * In-memory flash for tests: counts sector writes, cuts power after any number of them (the
 * write in progress is torn at a sector boundary: earlier sectors land, later ones do not),
 * and flips bits. Sector writes are atomic and in order, as on eMMC with reliable write.
 *
 * With an erase block larger than a sector it models NOR behind Linux's mtdblock instead: a
 * write to any sector of a block reads the whole block, erases it (all 0xff) and programs it
 * back sector by sector. The erase and each program of a sector that is not all 0xff count as
 * one write each, so a cut can land right after the erase (the block's other sectors gone) or
 * part-way through the program.
 */
import type { BlockDevice } from './block';
import { BootError } from './errors';

export class SimFlash implements BlockDevice {
  readonly sectorSize: number;
  readonly sectorCount: number;
  readonly eraseBlockSize?: number;
  readonly bytes: Uint8Array;
  /** Sector writes that reached the medium since creation. */
  sectorWrites = 0;
  private cutAt = -1;

  constructor(sizeBytes: number, sectorSize = 512, contents?: Uint8Array, eraseBlockSize?: number) {
    this.sectorSize = sectorSize;
    if (eraseBlockSize && eraseBlockSize > sectorSize) {
      if (eraseBlockSize % sectorSize || sizeBytes % eraseBlockSize) throw new Error('erase block ' + eraseBlockSize + ' does not divide the flash into whole sectors');
      this.eraseBlockSize = eraseBlockSize;
    }
    this.sectorCount = Math.floor(sizeBytes / sectorSize);
    this.bytes = new Uint8Array(this.sectorCount * sectorSize);
    if (contents) this.bytes.set(contents.subarray(0, this.bytes.length));
    else this.bytes.fill(0xff);
  }

  /** Power is cut once `n` more sector writes have landed; every later write fails. */
  cutPowerAfter(n: number): void {
    this.cutAt = this.sectorWrites + n;
  }

  get powerCut(): boolean {
    return this.cutAt >= 0 && this.sectorWrites >= this.cutAt;
  }

  /** The device after a power cycle: same contents, power restored. */
  reboot(): SimFlash {
    return new SimFlash(this.bytes.length, this.sectorSize, this.bytes, this.eraseBlockSize);
  }

  flipBit(byteOffset: number, bit: number): void {
    this.bytes[byteOffset] ^= 1 << bit;
  }

  read(sector: number, count: number): Uint8Array {
    if (sector < 0 || sector + count > this.sectorCount) throw new Error('read past the end of the flash');
    const out = new Uint8Array(count * this.sectorSize);
    out.set(this.bytes.subarray(sector * this.sectorSize, (sector + count) * this.sectorSize));
    return out;
  }

  write(sector: number, data: Uint8Array): void {
    const n = data.length / this.sectorSize;
    if (Math.floor(n) !== n || sector < 0 || sector + n > this.sectorCount) throw new Error('bad write to the flash');
    if (this.eraseBlockSize) {
      this.eraseWrite(sector, data);
      return;
    }
    for (let i = 0; i < n; i++) {
      if (this.powerCut) throw new BootError('E_POWER_CUT', 'power cut after ' + this.sectorWrites + ' sector writes');
      this.bytes.set(data.subarray(i * this.sectorSize, (i + 1) * this.sectorSize), (sector + i) * this.sectorSize);
      this.sectorWrites++;
    }
  }

  /** mtdblock's read-modify-erase-program, block by block in address order. */
  private eraseWrite(sector: number, data: Uint8Array): void {
    const ss = this.sectorSize;
    const eb = this.eraseBlockSize as number;
    const start = sector * ss;
    const end = start + data.length;
    for (let b = Math.floor(start / eb) * eb; b < end; b += eb) {
      const block = this.bytes.slice(b, b + eb);
      const from = Math.max(start, b);
      const to = Math.min(end, b + eb);
      block.set(data.subarray(from - start, to - start), from - b);
      this.cut();
      this.bytes.fill(0xff, b, b + eb);
      this.sectorWrites++;
      for (let o = 0; o < eb; o += ss) {
        let erased = true;
        for (let i = o; i < o + ss && erased; i++) erased = block[i] === 0xff;
        if (erased) continue;
        this.cut();
        this.bytes.set(block.subarray(o, o + ss), b + o);
        this.sectorWrites++;
      }
    }
  }

  private cut(): void {
    if (this.powerCut) throw new BootError('E_POWER_CUT', 'power cut after ' + this.sectorWrites + ' sector writes');
  }

  flush(): void {
    if (this.powerCut) throw new BootError('E_POWER_CUT', 'power cut before flush');
  }
}
