/**
 * YMODEM framing (Forsberg, "XMODEM/YMODEM Protocol Reference", 1988), sender side.
 *
 *   frame  = SOH|STX, seq, 255 - seq, payload[128|1024], check
 *   check  = CRC-16/XMODEM big-endian (2 bytes), or an 8-bit arithmetic sum (1 byte)
 *            when the receiver started with NAK instead of 'C'
 *   header = block 0: name NUL size-decimal [SP mtime-octal], NUL-padded
 *   data   = blocks 1, 2, ... 255, 0, 1, ... (8-bit wrap), last one padded with SUB (0x1A)
 *   end    = block 0 whose payload is all NUL (empty name): no more files
 */
import { crc16Xmodem } from './crc16';

export const SOH = 0x01; // 128-byte block follows
export const STX = 0x02; // 1024-byte block follows
export const EOT = 0x04;
export const ACK = 0x06;
export const BS = 0x08;
export const NAK = 0x15;
export const CAN = 0x18;
export const SUB = 0x1a; // CP/M EOF, pads the last data block
export const CRC_REQUEST = 0x43; // 'C': receiver wants CRC-16 (and, from U-Boot, "resend")

export type BlockLength = 128 | 1024;
export type CheckMode = 'crc16' | 'checksum';

/** Bytes on the wire besides the payload: start byte, seq, ~seq, check. */
export function frameOverhead(mode: CheckMode): number {
  return mode === 'crc16' ? 5 : 4;
}

/**
 * One frame. `payload` may be shorter than `length`; the rest is filled with `pad`
 * (SUB for data blocks, NUL for block 0).
 */
export function encodeBlock(seq: number, payload: Uint8Array, length: BlockLength, mode: CheckMode, pad: number): Uint8Array {
  if (payload.length > length) {
    throw new RangeError(`payload of ${payload.length} bytes does not fit a ${length}-byte block`);
  }
  const frame = new Uint8Array(3 + length + (mode === 'crc16' ? 2 : 1));
  frame[0] = length === 1024 ? STX : SOH;
  frame[1] = seq & 0xff;
  frame[2] = 0xff - (seq & 0xff);
  frame.set(payload, 3);
  if (payload.length < length) frame.fill(pad, 3 + payload.length, 3 + length);
  if (mode === 'crc16') {
    const crc = crc16Xmodem(frame, 0, 3, 3 + length);
    frame[3 + length] = crc >>> 8;
    frame[4 + length] = crc & 0xff;
  } else {
    let sum = 0;
    for (let i = 3; i < 3 + length; i++) sum += frame[i]!;
    frame[3 + length] = sum & 0xff;
  }
  return frame;
}

export interface HeaderInfo {
  name: string;
  size: number;
  /** Seconds since the Unix epoch; sent in octal when given. */
  mtime?: number;
}

/** Block-0 payload: `name NUL size [SP mtime-octal]`, unpadded. The sender validates the name. */
export function encodeHeaderPayload(info: HeaderInfo): Uint8Array {
  const name = new TextEncoder().encode(info.name);
  let fields = String(info.size);
  if (info.mtime !== undefined) fields += ` ${Math.max(0, Math.floor(info.mtime)).toString(8)}`;
  const rest = new TextEncoder().encode(fields);
  const out = new Uint8Array(name.length + 1 + rest.length);
  out.set(name, 0);
  out[name.length] = 0;
  out.set(rest, name.length + 1);
  return out;
}

/** Block 0 for a file: a 128-byte block when the fields fit (with a terminating NUL), else 1024. */
export function encodeHeaderBlock(info: HeaderInfo, mode: CheckMode): Uint8Array {
  const payload = encodeHeaderPayload(info);
  if (payload.length >= 1024) throw new RangeError(`YMODEM header of ${payload.length} bytes does not fit block 0`);
  const length: BlockLength = payload.length < 128 ? 128 : 1024;
  return encodeBlock(0, payload, length, mode, 0x00);
}

/** The empty block 0 that ends a batch. */
export function encodeEndOfBatchBlock(mode: CheckMode): Uint8Array {
  return encodeBlock(0, new Uint8Array(0), 128, mode, 0x00);
}
