/** CRC-32 (IEEE 802.3, reflected, as zlib and U-Boot's `crc32` command compute it). ES5-safe. */
let table: number[] | null = null;

function makeTable(): number[] {
  const t: number[] = [];
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t.push(c >>> 0);
  }
  return t;
}

/** Continue a CRC: pass the previous result as `crc` (0 to start). */
export function crc32(data: Uint8Array, crc?: number): number {
  if (!table) table = makeTable();
  let c = (crc === undefined ? 0 : crc) ^ 0xffffffff;
  for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
