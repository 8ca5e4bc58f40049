/**
 * The Signet app image (.simg) container, format version 1. See docs/image-format.md.
 *
 *   +--------------------+  offset 0
 *   | header (32 bytes)  |  one field table below, little-endian
 *   +--------------------+  32
 *   | manifest           |  canonical JSON, printable ASCII, manifestSize bytes
 *   +--------------------+  32 + manifestSize
 *   | payload            |  payloadSize bytes: the payloads the manifest lists, back to back
 *   +--------------------+  32 + manifestSize + payloadSize
 *   | signature block    |  'SSIG', count, reserved, count x (keyid[32], ed25519 sig[64])
 *   +--------------------+
 *
 * Signatures cover bytes [0, 32 + manifestSize): header and manifest. The manifest commits to
 * the payload by SHA-256 digests, so adding a signature never changes what was signed.
 */
import { ImageError } from './errors';

export const IMAGE_MAGIC = [0x53, 0x49, 0x4d, 0x47]; // "SIMG"
export const SIG_MAGIC = [0x53, 0x53, 0x49, 0x47]; // "SSIG"
export const FORMAT_VERSION = 1;
export const HEADER_SIZE = 32;
export const SIG_BLOCK_HEADER_SIZE = 8;
export const SIG_ENTRY_SIZE = 96; // keyid (32) + ed25519 signature (64)
export const KEYID_SIZE = 32;
export const SIGNATURE_SIZE = 64;

/** Hard caps, checked before any allocation that depends on a size read from the input. */
export const MAX_MANIFEST_SIZE = 64 * 1024;
export const MAX_PAYLOAD_SIZE = 256 * 1024 * 1024;
export const MAX_SIGNATURES = 16;

type FieldType = 'magic' | 'u16' | 'u32' | 'zero';
interface Field {
  readonly name: string;
  readonly type: FieldType;
  readonly size: number;
}

/** The header, in order. Offsets are the running sum of sizes; a check below pins the total. */
export const HEADER_FIELDS: readonly Field[] = [
  { name: 'magic', type: 'magic', size: 4 },
  { name: 'formatVersion', type: 'u16', size: 2 },
  { name: 'headerSize', type: 'u16', size: 2 },
  { name: 'flags', type: 'u32', size: 4 },
  { name: 'manifestSize', type: 'u32', size: 4 },
  { name: 'payloadSize', type: 'u32', size: 4 },
  { name: 'reserved', type: 'zero', size: 12 },
];

(function checkTable() {
  let total = 0;
  for (let i = 0; i < HEADER_FIELDS.length; i++) total += HEADER_FIELDS[i].size;
  if (total !== HEADER_SIZE) throw new Error('image header field table adds up to ' + total + ', not ' + HEADER_SIZE);
})();

export interface ImageHeader {
  formatVersion: number;
  headerSize: number;
  flags: number;
  manifestSize: number;
  payloadSize: number;
}

export interface SignatureEntry {
  keyid: Uint8Array; // 32 bytes: the TUF key id (SHA-256 of the key's canonical JSON)
  signature: Uint8Array; // 64 bytes, ed25519 over bytes [0, HEADER_SIZE + manifestSize)
}

/** Byte ranges of a decoded image; views into the input, never copies. */
export interface ImageLayout {
  header: ImageHeader;
  signedBytes: Uint8Array; // header + manifest
  manifestBytes: Uint8Array;
  payloadBytes: Uint8Array;
  signatures: SignatureEntry[];
  totalSize: number;
}

function readU16(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8);
}
function readU32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
}
function writeU16(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 255;
  b[o + 1] = (v >>> 8) & 255;
}
function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 255;
  b[o + 1] = (v >>> 8) & 255;
  b[o + 2] = (v >>> 16) & 255;
  b[o + 3] = (v >>> 24) & 255;
}

export function encodeHeader(h: ImageHeader): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE);
  const values = h as unknown as Record<string, number>;
  let o = 0;
  for (let i = 0; i < HEADER_FIELDS.length; i++) {
    const f = HEADER_FIELDS[i];
    if (f.type === 'magic') out.set(IMAGE_MAGIC, o);
    else if (f.type === 'u16') writeU16(out, o, values[f.name]);
    else if (f.type === 'u32') writeU32(out, o, values[f.name]);
    // 'zero': left as zeros
    o += f.size;
  }
  return out;
}

/**
 * Decode and check the fixed header. Order matters for the error a person sees:
 * truncated → magic → version → structure → caps.
 */
export function decodeHeader(b: Uint8Array): ImageHeader {
  if (b.length < 4) throw new ImageError('E_TRUNCATED', 'file is ' + b.length + ' bytes, shorter than an image header');
  const values: Record<string, number> = {};
  let o = 0;
  for (let i = 0; i < HEADER_FIELDS.length; i++) {
    const f = HEADER_FIELDS[i];
    if (f.type === 'magic') {
      for (let k = 0; k < 4; k++) {
        if (b[o + k] !== IMAGE_MAGIC[k]) throw new ImageError('E_MAGIC', 'bad magic: not a Signet app image');
      }
      if (b.length < HEADER_SIZE) throw new ImageError('E_TRUNCATED', 'file is ' + b.length + ' bytes, shorter than the ' + HEADER_SIZE + '-byte header');
    } else if (f.type === 'u16') values[f.name] = readU16(b, o);
    else if (f.type === 'u32') values[f.name] = readU32(b, o);
    else {
      for (let k = 0; k < f.size; k++) {
        if (b[o + k] !== 0) throw new ImageError('E_HEADER', 'reserved header byte ' + (o + k) + ' is not zero');
      }
    }
    if (f.name === 'formatVersion' && values.formatVersion !== FORMAT_VERSION) {
      throw new ImageError('E_VERSION', 'unsupported image format version ' + values.formatVersion + ' (this verifier implements ' + FORMAT_VERSION + ')');
    }
    o += f.size;
  }
  if (values.headerSize !== HEADER_SIZE) throw new ImageError('E_HEADER', 'header size field is ' + values.headerSize + ', expected ' + HEADER_SIZE);
  if (values.flags !== 0) throw new ImageError('E_HEADER', 'unknown header flags 0x' + values.flags.toString(16));
  if (values.manifestSize === 0) throw new ImageError('E_HEADER', 'manifest size is zero');
  if (values.manifestSize > MAX_MANIFEST_SIZE) throw new ImageError('E_SIZE_CAP', 'manifest size ' + values.manifestSize + ' exceeds the cap of ' + MAX_MANIFEST_SIZE + ' bytes');
  if (values.payloadSize > MAX_PAYLOAD_SIZE) throw new ImageError('E_SIZE_CAP', 'payload size ' + values.payloadSize + ' exceeds the cap of ' + MAX_PAYLOAD_SIZE + ' bytes');
  return {
    formatVersion: values.formatVersion,
    headerSize: values.headerSize,
    flags: values.flags,
    manifestSize: values.manifestSize,
    payloadSize: values.payloadSize,
  };
}

/** Offset of the signature block for a header. */
export function sigBlockOffset(h: ImageHeader): number {
  return HEADER_SIZE + h.manifestSize + h.payloadSize;
}

/**
 * Given the header and the 8-byte signature block header, the total image size. Lets a
 * reader of a slot (where the image is followed by erased flash) know how much to read.
 */
export function imageSizeFrom(h: ImageHeader, sigHeader: Uint8Array, maxPayload?: number): number {
  if (maxPayload !== undefined && h.payloadSize > maxPayload) {
    throw new ImageError('E_SIZE_CAP', 'payload size ' + h.payloadSize + ' exceeds the cap of ' + maxPayload + ' bytes');
  }
  if (sigHeader.length < SIG_BLOCK_HEADER_SIZE) throw new ImageError('E_TRUNCATED', 'image ends before its signature block');
  for (let k = 0; k < 4; k++) {
    if (sigHeader[k] !== SIG_MAGIC[k]) throw new ImageError('E_SIG_BLOCK', 'signature block magic missing');
  }
  const count = readU16(sigHeader, 4);
  if (readU16(sigHeader, 6) !== 0) throw new ImageError('E_SIG_BLOCK', 'signature block reserved field is not zero');
  if (count > MAX_SIGNATURES) throw new ImageError('E_SIZE_CAP', count + ' signatures exceed the cap of ' + MAX_SIGNATURES);
  return sigBlockOffset(h) + SIG_BLOCK_HEADER_SIZE + count * SIG_ENTRY_SIZE;
}

/**
 * The caps a verifier imposes beyond the format's, judged from the header alone (before any
 * read whose size comes from it): a tighter payload cap, and the slot the image must fit —
 * the header, manifest, payload and signature-block header must fit it.
 */
export function checkHeaderCaps(h: ImageHeader, maxPayload?: number, slotBytes?: number): void {
  if (maxPayload !== undefined && h.payloadSize > maxPayload) {
    throw new ImageError('E_SIZE_CAP', 'payload size ' + h.payloadSize + ' exceeds the cap of ' + maxPayload + ' bytes');
  }
  if (slotBytes !== undefined && sigBlockOffset(h) + SIG_BLOCK_HEADER_SIZE > slotBytes) {
    throw new ImageError('E_SIZE_CAP', 'the header describes an image of at least ' + (sigBlockOffset(h) + SIG_BLOCK_HEADER_SIZE) + ' bytes, the slot holds ' + slotBytes);
  }
}

/** The whole image must fit the slot (after the signature count is known). */
export function checkImageFitsSlot(total: number, slotBytes?: number): void {
  if (slotBytes !== undefined && total > slotBytes) {
    throw new ImageError('E_SIZE_CAP', 'the image is ' + total + ' bytes, the slot holds ' + slotBytes);
  }
}

/**
 * Split an image into its parts, checking every size. No cryptography here. Order
 * (docs/image-format.md §5 steps 1–2): header and its caps, the verifier's caps (payload,
 * slot), length up to the signature-block header, the signature-block header, the slot
 * again with the signature count, then the exact length.
 */
export function decodeLayout(b: Uint8Array, maxPayload?: number, slotBytes?: number): ImageLayout {
  const header = decodeHeader(b);
  checkHeaderCaps(header, maxPayload, slotBytes);
  const sigOff = sigBlockOffset(header);
  if (b.length < sigOff + SIG_BLOCK_HEADER_SIZE) {
    throw new ImageError('E_TRUNCATED', 'file is ' + b.length + ' bytes but the header describes at least ' + (sigOff + SIG_BLOCK_HEADER_SIZE));
  }
  const total = imageSizeFrom(header, b.subarray(sigOff, sigOff + SIG_BLOCK_HEADER_SIZE), maxPayload);
  checkImageFitsSlot(total, slotBytes);
  if (b.length < total) throw new ImageError('E_TRUNCATED', 'file is ' + b.length + ' bytes, the image is ' + total);
  if (b.length > total) throw new ImageError('E_TRAILING_DATA', (b.length - total) + ' bytes follow the end of the image');
  const signatures: SignatureEntry[] = [];
  const count = readU16(b, sigOff + 4);
  for (let i = 0; i < count; i++) {
    const o = sigOff + SIG_BLOCK_HEADER_SIZE + i * SIG_ENTRY_SIZE;
    signatures.push({ keyid: b.subarray(o, o + KEYID_SIZE), signature: b.subarray(o + KEYID_SIZE, o + SIG_ENTRY_SIZE) });
  }
  const manifestEnd = HEADER_SIZE + header.manifestSize;
  return {
    header,
    signedBytes: b.subarray(0, manifestEnd),
    manifestBytes: b.subarray(HEADER_SIZE, manifestEnd),
    payloadBytes: b.subarray(manifestEnd, sigOff),
    signatures,
    totalSize: total,
  };
}

/** Assemble an image from its parts. Signatures are appended in the order given. */
export function encodeImage(manifestBytes: Uint8Array, payloadBytes: Uint8Array, signatures: SignatureEntry[]): Uint8Array {
  if (manifestBytes.length === 0 || manifestBytes.length > MAX_MANIFEST_SIZE) {
    throw new ImageError('E_SIZE_CAP', 'manifest of ' + manifestBytes.length + ' bytes is outside 1..' + MAX_MANIFEST_SIZE);
  }
  if (payloadBytes.length > MAX_PAYLOAD_SIZE) throw new ImageError('E_SIZE_CAP', 'payload of ' + payloadBytes.length + ' bytes exceeds ' + MAX_PAYLOAD_SIZE);
  if (signatures.length > MAX_SIGNATURES) throw new ImageError('E_SIZE_CAP', signatures.length + ' signatures exceed the cap of ' + MAX_SIGNATURES);
  const header = encodeHeader({
    formatVersion: FORMAT_VERSION,
    headerSize: HEADER_SIZE,
    flags: 0,
    manifestSize: manifestBytes.length,
    payloadSize: payloadBytes.length,
  });
  const sigOff = HEADER_SIZE + manifestBytes.length + payloadBytes.length;
  const out = new Uint8Array(sigOff + SIG_BLOCK_HEADER_SIZE + signatures.length * SIG_ENTRY_SIZE);
  out.set(header, 0);
  out.set(manifestBytes, HEADER_SIZE);
  out.set(payloadBytes, HEADER_SIZE + manifestBytes.length);
  out.set(SIG_MAGIC, sigOff);
  writeU16(out, sigOff + 4, signatures.length);
  for (let i = 0; i < signatures.length; i++) {
    const o = sigOff + SIG_BLOCK_HEADER_SIZE + i * SIG_ENTRY_SIZE;
    if (signatures[i].keyid.length !== KEYID_SIZE || signatures[i].signature.length !== SIGNATURE_SIZE) {
      throw new ImageError('E_SIG_BLOCK', 'signature entry ' + i + ' has the wrong size');
    }
    out.set(signatures[i].keyid, o);
    out.set(signatures[i].signature, o + KEYID_SIZE);
  }
  return out;
}
