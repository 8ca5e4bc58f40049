/**
 * The root chain the boot stage has accepted since it was built (docs/boot-state.md §Root
 * rotation). Stored in the state partition next to the boot state, in two areas written
 * alternately (like the state copies), each with a sequence number and a CRC-32. The chain is
 * never trusted because it is on flash: every boot re-verifies it link by link from the root
 * compiled into the boot stage, so a forged or truncated chain only loses the rotation, never
 * gains trust.
 *
 * Area layout (little-endian): magic "SRCH", u16 version 1, u16 link count, u32 seq,
 * u32 data length, u32 CRC-32 of the data, then for each link: u32 length + the root
 * envelope's bytes (JSON).
 */
import { crc32 } from '../../sdk/util/crc32';
import { eraseSectors, type BlockDevice } from './block';
import { stateConfigAreas } from './configstore';

const MAGIC = [0x53, 0x52, 0x43, 0x48]; // "SRCH"
const HEADER = 20;
export const MAX_ROOT_LINKS = 16;

export interface ChainArea {
  first: number; // first sector
  count: number; // sectors
}

/**
 * Areas: the sectors after each state copy's erase block (the copy's own sector on
 * sector-atomic media, block.ts eraseSectors), up to that half's config area (configstore.ts
 * stateConfigAreas) or, on a partition too small for one, up to the next copy (state.ts
 * copySector). Disjoint from both and in erase blocks of their own, so no chain write can
 * reach (or, on NOR behind mtdblock, erase) the boot state or the config.
 */
export function chainAreas(dev: BlockDevice): [ChainArea, ChainArea] {
  const half = Math.floor(dev.sectorCount / 2);
  const e = eraseSectors(dev);
  const cfg = stateConfigAreas(dev);
  const end0 = cfg ? cfg[0].first : half;
  const end1 = cfg ? cfg[1].first : dev.sectorCount;
  return [{ first: e, count: end0 - e }, { first: half + e, count: end1 - half - e }];
}

function u32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
}
function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 255; b[o + 1] = (v >>> 8) & 255; b[o + 2] = (v >>> 16) & 255; b[o + 3] = (v >>> 24) & 255;
}

interface AreaRead { seq: number; links: Uint8Array[] }

function readArea(dev: BlockDevice, a: ChainArea): AreaRead | null {
  if (a.count < 1) return null;
  const head = dev.read(a.first, 1);
  for (let i = 0; i < 4; i++) if (head[i] !== MAGIC[i]) return null;
  if ((head[4] | (head[5] << 8)) !== 1) return null;
  const n = head[6] | (head[7] << 8);
  const seq = u32(head, 8);
  const len = u32(head, 12);
  if (n > MAX_ROOT_LINKS || HEADER + len > a.count * dev.sectorSize) return null;
  const all = dev.read(a.first, Math.ceil((HEADER + len) / dev.sectorSize));
  const data = all.subarray(HEADER, HEADER + len);
  if (crc32(data) !== u32(head, 16)) return null;
  const links: Uint8Array[] = [];
  let o = 0;
  for (let i = 0; i < n; i++) {
    if (o + 4 > len) return null;
    const l = u32(data, o);
    if (o + 4 + l > len) return null;
    links.push(data.subarray(o + 4, o + 4 + l));
    o += 4 + l;
  }
  if (o !== len) return null;
  return { seq, links };
}

export interface ChainRead { links: Uint8Array[]; seq: number; newest: number }

/** The newest intact chain (empty when none was ever written). */
export function readRootChain(dev: BlockDevice): ChainRead {
  const areas = chainAreas(dev);
  const r0 = readArea(dev, areas[0]);
  const r1 = readArea(dev, areas[1]);
  if (r0 && (!r1 || r0.seq >= r1.seq)) return { links: r0.links, seq: r0.seq, newest: 0 };
  if (r1) return { links: r1.links, seq: r1.seq, newest: 1 };
  return { links: [], seq: 0, newest: -1 };
}

/** Write `links` into the area not holding the current chain; throws if it does not fit. */
export function writeRootChain(dev: BlockDevice, prev: ChainRead, links: Uint8Array[]): ChainRead {
  if (links.length > MAX_ROOT_LINKS) throw new Error('root chain longer than ' + MAX_ROOT_LINKS + ' links');
  let len = 0;
  for (let i = 0; i < links.length; i++) len += 4 + links[i].length;
  const target = prev.newest === 0 ? 1 : 0;
  const area = chainAreas(dev)[target];
  const sectors = Math.ceil((HEADER + len) / dev.sectorSize);
  if (sectors > area.count) throw new Error('root chain of ' + len + ' bytes does not fit the state partition');
  const buf = new Uint8Array(sectors * dev.sectorSize);
  let o = HEADER;
  for (let i = 0; i < links.length; i++) {
    putU32(buf, o, links[i].length);
    buf.set(links[i], o + 4);
    o += 4 + links[i].length;
  }
  buf.set(MAGIC, 0);
  buf[4] = 1;
  buf[6] = links.length & 255;
  buf[7] = links.length >> 8;
  const seq = prev.seq + 1;
  putU32(buf, 8, seq);
  putU32(buf, 12, len);
  putU32(buf, 16, crc32(buf.subarray(HEADER, HEADER + len)));
  dev.write(area.first, buf);
  dev.flush();
  return { links, seq, newest: target };
}
