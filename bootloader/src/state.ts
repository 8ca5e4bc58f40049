/**
 * The boot state (docs/boot-state.md): which slot is active, each slot's status, trial tries
 * left, the security-counter floor and the last boot result. Two copies, each in its own
 * sector, each with a sequence number and a CRC-32. A write goes to the copy *not* holding
 * the newest valid state, so a torn write can only damage the older copy; readers take the
 * valid copy with the highest sequence number. `writeState` is the only function that writes.
 */
import { crc32 } from '../../sdk/util/crc32';
import { asciiDecode } from '../../sdk/util/bytes';
import type { BlockDevice } from './block';

export type SlotName = 'a' | 'b';
export type SlotStatus = 'empty' | 'trial' | 'good' | 'bad';
export type BootResult = 'none' | 'ok' | 'trial' | 'fallback' | 'recovery';

export interface BootState {
  seq: number;
  active: SlotName; // the slot that last booted good (the fallback for a trial)
  slotA: SlotStatus;
  slotB: SlotStatus;
  triesLeft: number; // for the slot in 'trial'
  securityFloor: number; // highest security counter confirmed; lower images are refused
  lastResult: BootResult;
  lastSlot: SlotName;
  lastError: string; // an E_ code, or ''
}

export const STATE_MAGIC = [0x53, 0x42, 0x53, 0x54]; // "SBST"
export const STATE_VERSION = 1;
export const STATE_SIZE = 64;
const ERROR_FIELD = 24;
const STATUS: SlotStatus[] = ['empty', 'trial', 'good', 'bad'];
const RESULTS: BootResult[] = ['none', 'ok', 'trial', 'fallback', 'recovery'];

type FieldType = 'magic' | 'u8' | 'u16' | 'u32' | 'slot' | 'status' | 'result' | 'code' | 'zero' | 'crc';
interface Field { name: string; type: FieldType; size: number }

/** One copy, little-endian. The CRC covers every byte before it. */
export const STATE_FIELDS: Field[] = [
  { name: 'magic', type: 'magic', size: 4 },
  { name: 'version', type: 'u16', size: 2 },
  { name: 'size', type: 'u16', size: 2 },
  { name: 'seq', type: 'u32', size: 4 },
  { name: 'active', type: 'slot', size: 1 },
  { name: 'slotA', type: 'status', size: 1 },
  { name: 'slotB', type: 'status', size: 1 },
  { name: 'triesLeft', type: 'u8', size: 1 },
  { name: 'securityFloor', type: 'u32', size: 4 },
  { name: 'lastResult', type: 'result', size: 1 },
  { name: 'lastSlot', type: 'slot', size: 1 },
  { name: 'lastError', type: 'code', size: ERROR_FIELD },
  { name: 'reserved', type: 'zero', size: 14 },
  { name: 'crc', type: 'crc', size: 4 },
];

(function checkTable() {
  let n = 0;
  for (let i = 0; i < STATE_FIELDS.length; i++) n += STATE_FIELDS[i].size;
  if (n !== STATE_SIZE) throw new Error('boot state field table adds up to ' + n + ', not ' + STATE_SIZE);
})();

function rd(b: Uint8Array, o: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + b[o + i];
  return v;
}
function wr(b: Uint8Array, o: number, size: number, v: number): void {
  for (let i = 0; i < size; i++) {
    b[o + i] = v & 255;
    v = Math.floor(v / 256);
  }
}

export function encodeState(s: BootState): Uint8Array {
  const b = new Uint8Array(STATE_SIZE);
  const v = s as unknown as Record<string, unknown>;
  let o = 0;
  for (let i = 0; i < STATE_FIELDS.length; i++) {
    const f = STATE_FIELDS[i];
    switch (f.type) {
      case 'magic': b.set(STATE_MAGIC, o); break;
      case 'u8': case 'u32': wr(b, o, f.size, v[f.name] as number); break;
      case 'u16': wr(b, o, f.size, f.name === 'version' ? STATE_VERSION : STATE_SIZE); break;
      case 'slot': b[o] = v[f.name] === 'b' ? 1 : 0; break;
      case 'status': b[o] = STATUS.indexOf(v[f.name] as SlotStatus); break;
      case 'result': b[o] = RESULTS.indexOf(v[f.name] as BootResult); break;
      case 'code': {
        const c = String(v[f.name] || '');
        for (let k = 0; k < c.length && k < f.size; k++) b[o + k] = c.charCodeAt(k) & 0x7f;
        break;
      }
      case 'zero': break;
      case 'crc': wr(b, o, 4, crc32(b.subarray(0, o))); break;
    }
    o += f.size;
  }
  return b;
}

/** Decode one copy; null when it is not a valid, intact copy of a version we understand. */
export function decodeState(b: Uint8Array): BootState | null {
  if (b.length < STATE_SIZE) return null;
  const v: Record<string, unknown> = {};
  let o = 0;
  for (let i = 0; i < STATE_FIELDS.length; i++) {
    const f = STATE_FIELDS[i];
    switch (f.type) {
      case 'magic': for (let k = 0; k < 4; k++) if (b[o + k] !== STATE_MAGIC[k]) return null; break;
      case 'u8': case 'u32': v[f.name] = rd(b, o, f.size); break;
      case 'u16': if (rd(b, o, 2) !== (f.name === 'version' ? STATE_VERSION : STATE_SIZE)) return null; break;
      case 'slot': if (b[o] > 1) return null; v[f.name] = b[o] === 1 ? 'b' : 'a'; break;
      case 'status': if (b[o] >= STATUS.length) return null; v[f.name] = STATUS[b[o]]; break;
      case 'result': if (b[o] >= RESULTS.length) return null; v[f.name] = RESULTS[b[o]]; break;
      case 'code': {
        let end = 0;
        while (end < f.size && b[o + end] !== 0) end++;
        for (let k = end; k < f.size; k++) if (b[o + k] !== 0) return null;
        const s = asciiDecode(b.subarray(o, o + end));
        if (s === null) return null;
        v[f.name] = s;
        break;
      }
      case 'zero': for (let k = 0; k < f.size; k++) if (b[o + k] !== 0) return null; break;
      case 'crc': if (rd(b, o, 4) !== crc32(b.subarray(0, o))) return null; break;
    }
    o += f.size;
  }
  return v as unknown as BootState;
}

export interface StateRead {
  state: BootState | null; // null: no valid copy at all
  valid: [boolean, boolean]; // which copies are intact
  newest: number; // index of the copy holding `state`, -1 if none
}

/** Copy i lives in sector i * (sectorCount / 2): the two halves of the state partition. */
function copySector(dev: BlockDevice, i: number): number {
  return i * Math.floor(dev.sectorCount / 2);
}

export function readState(dev: BlockDevice): StateRead {
  const c0 = decodeState(dev.read(copySector(dev, 0), 1));
  const c1 = decodeState(dev.read(copySector(dev, 1), 1));
  let newest = -1;
  if (c0 && c1) newest = c1.seq > c0.seq ? 1 : 0;
  else if (c0) newest = 0;
  else if (c1) newest = 1;
  return { state: newest === 0 ? c0 : newest === 1 ? c1 : null, valid: [!!c0, !!c1], newest };
}

/**
 * The only writer. Writes `next` with seq = previous newest + 1 into the other copy, then
 * flushes. Returns the state as written.
 */
export function writeState(dev: BlockDevice, prev: StateRead, next: BootState): StateRead {
  const seq = (prev.state ? prev.state.seq : 0) + 1;
  const target = prev.newest === 0 ? 1 : 0;
  const written: BootState = {
    seq, active: next.active, slotA: next.slotA, slotB: next.slotB, triesLeft: next.triesLeft,
    securityFloor: next.securityFloor, lastResult: next.lastResult, lastSlot: next.lastSlot, lastError: next.lastError,
  };
  const sector = new Uint8Array(dev.sectorSize);
  sector.set(encodeState(written));
  dev.write(copySector(dev, target), sector);
  dev.flush();
  const valid: [boolean, boolean] = [prev.valid[0], prev.valid[1]];
  valid[target] = true;
  return { state: written, valid, newest: target };
}

export function slotStatus(s: BootState, slot: SlotName): SlotStatus {
  return slot === 'a' ? s.slotA : s.slotB;
}

export function withSlotStatus(s: BootState, slot: SlotName, status: SlotStatus): BootState {
  const n = copyState(s);
  if (slot === 'a') n.slotA = status;
  else n.slotB = status;
  return n;
}

export function copyState(s: BootState): BootState {
  return {
    seq: s.seq, active: s.active, slotA: s.slotA, slotB: s.slotB, triesLeft: s.triesLeft,
    securityFloor: s.securityFloor, lastResult: s.lastResult, lastSlot: s.lastSlot, lastError: s.lastError,
  };
}

export function otherSlot(s: SlotName): SlotName {
  return s === 'a' ? 'b' : 'a';
}

/** The state a factory-fresh disk image carries: slot A good, B empty. */
export function initialState(securityFloor: number): BootState {
  return {
    seq: 0, active: 'a', slotA: 'good', slotB: 'empty', triesLeft: 0, securityFloor,
    lastResult: 'none', lastSlot: 'a', lastError: '',
  };
}
