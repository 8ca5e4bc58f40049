/**
 * Factory provisioning of a device's flash: slot A (and optionally B) written, the boot
 * state initialised in both copies. Used by `signet disk` and by tests; ES5-safe.
 */
import { PartitionDevice, writeBytesPadded, type BlockDevice } from './block';
import { initialState, readState, writeState, type BootState } from './state';

export interface FlashLayout {
  slot_a: { offset: number; size: number };
  slot_b: { offset: number; size: number };
  state: { offset: number; size: number };
}

export interface ProvisionOptions {
  slotA: Uint8Array;
  slotB?: Uint8Array;
  /** The security floor the device starts with (usually slot A's counter). */
  securityFloor: number;
  /** Override parts of the initial state (tests). */
  state?: Partial<BootState>;
}

export function provisionFlash(dev: BlockDevice, layout: FlashLayout, o: ProvisionOptions): void {
  const part = (p: { offset: number; size: number }) => new PartitionDevice(dev, p.offset, p.size);
  const a = part(layout.slot_a);
  const b = part(layout.slot_b);
  const st = part(layout.state);
  // Erase the state partition first, then write slots, then the state (both copies).
  const erased = new Uint8Array(st.sectorCount * st.sectorSize);
  for (let i = 0; i < erased.length; i++) erased[i] = 0xff;
  st.write(0, erased);
  writeBytesPadded(a, o.slotA);
  if (o.slotB) writeBytesPadded(b, o.slotB);
  else {
    const blank = new Uint8Array(b.sectorSize);
    for (let i = 0; i < blank.length; i++) blank[i] = 0xff;
    b.write(0, blank);
  }
  const s = initialState(o.securityFloor);
  if (o.slotB) s.slotB = 'good';
  const over = (o.state || {}) as Record<string, unknown>;
  const keys = Object.keys(over);
  for (let i = 0; i < keys.length; i++) (s as unknown as Record<string, unknown>)[keys[i]] = over[keys[i]];
  const first = writeState(st, readState(st), s);
  writeState(st, first, s);
  dev.flush();
}
