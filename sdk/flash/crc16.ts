/**
 * CRC-16/XMODEM: poly 0x1021, init 0x0000, no reflection, no final xor.
 * This is the "CRC-16" of XMODEM-CRC and YMODEM (U-Boot calls it crc16_ccitt
 * with a zero seed; lrzsz calls it updcrc). Check value for "123456789" is 0x31C3.
 */

const POLY = 0x1021;

const TABLE: Uint16Array = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ POLY) & 0xffff : (crc << 1) & 0xffff;
    }
    table[i] = crc;
  }
  return table;
})();

/** CRC-16/XMODEM of `data[start, end)`, continuing from `crc` (0 for a fresh CRC). */
export function crc16Xmodem(data: Uint8Array, crc = 0, start = 0, end = data.length): number {
  let c = crc & 0xffff;
  for (let i = start; i < end; i++) {
    c = ((c << 8) & 0xffff) ^ TABLE[((c >>> 8) ^ data[i]!) & 0xff]!;
  }
  return c;
}
