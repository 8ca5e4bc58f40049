/**
 * Byte helpers that behave the same on Node and on ES5 engines (Duktape): no Buffer,
 * no TextEncoder, no typed-array `slice`.
 */

const HEX = '0123456789abcdef';

export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += HEX.charAt(bytes[i] >> 4) + HEX.charAt(bytes[i] & 15);
  return s;
}

/** Strict lowercase/uppercase hex decode; returns null on any bad character or odd length. */
export function fromHex(hex: string): Uint8Array | null {
  if (hex.length % 2 !== 0) return null;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexNibble(hex.charCodeAt(2 * i));
    const lo = hexNibble(hex.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) return null;
    out[i] = (hi << 4) | lo;
  }
  return out;
}

function hexNibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (let i = 0; i < parts.length; i++) n += parts[i].length;
  const out = new Uint8Array(n);
  let off = 0;
  for (let i = 0; i < parts.length; i++) {
    out.set(parts[i], off);
    off += parts[i].length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** A copy (not a view) of bytes[start, end). */
export function copyBytes(bytes: Uint8Array, start: number, end: number): Uint8Array {
  const out = new Uint8Array(end - start);
  out.set(bytes.subarray(start, end));
  return out;
}

/**
 * Strings are built from code units in chunks with String.fromCharCode.apply, never one
 * character at a time: Duktape interns every string it makes, so `s += c` over n characters
 * costs O(n²) there (2 KiB of root metadata took 20 ms in the guest). apply takes any
 * array-like, typed arrays included; chunks keep the argument count modest.
 */
const CHUNK = 4096;

function fromCodes(codes: ArrayLike<number>, start: number, end: number): string {
  let s = '';
  const sub = (a: number, b: number): ArrayLike<number> =>
    (codes as Uint8Array).subarray ? (codes as Uint8Array).subarray(a, b) : Array.prototype.slice.call(codes, a, b);
  for (let i = start; i < end; i += CHUNK) s += String.fromCharCode.apply(null, sub(i, Math.min(end, i + CHUNK)) as number[]);
  return s;
}

/** The engine's own UTF-8 encoder (Duktape 2 and Node have one; ES5 does not require it). */
interface Utf8Encoder {
  encode(s: string): Uint8Array;
}
// Declared here, not taken from a lib: ES5 engines may lack it (guarded by typeof below).
declare const TextEncoder: (new () => Utf8Encoder) | undefined;
let engineEncoder: Utf8Encoder | null | undefined;

function getEngineEncoder(): Utf8Encoder | null {
  if (engineEncoder === undefined) {
    engineEncoder = null;
    try {
      if (typeof TextEncoder === 'function') engineEncoder = new TextEncoder();
    } catch (_e) {
      engineEncoder = null;
    }
  }
  return engineEncoder;
}

const SURROGATE = /[\ud800-\udfff]/;

/**
 * UTF-8 encode. Lone surrogates are encoded as they are (3 bytes each), unlike TextEncoder
 * (which writes U+FFFD), so the engine's encoder is only used for strings without surrogates,
 * where both give the same bytes; the loop below is the reference and the fallback.
 */
export function utf8Encode(s: string): Uint8Array {
  const native = s.length > 64 ? getEngineEncoder() : null;
  if (native !== null && !SURROGATE.test(s)) {
    const e = native.encode(s);
    // A copy in this realm's Uint8Array, of exactly the encoded length.
    const out = new Uint8Array(e.length);
    out.set(e);
    return out;
  }
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && s.charCodeAt(i + 1) >= 0xdc00 && s.charCodeAt(i + 1) <= 0xdfff) {
      n += 4;
      i++;
    } else n += 3;
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c < 0x80) out[o++] = c;
    else if (c < 0x800) {
      out[o++] = 0xc0 | (c >> 6);
      out[o++] = 0x80 | (c & 63);
    } else if (c < 0x10000) {
      out[o++] = 0xe0 | (c >> 12);
      out[o++] = 0x80 | ((c >> 6) & 63);
      out[o++] = 0x80 | (c & 63);
    } else {
      out[o++] = 0xf0 | (c >> 18);
      out[o++] = 0x80 | ((c >> 12) & 63);
      out[o++] = 0x80 | ((c >> 6) & 63);
      out[o++] = 0x80 | (c & 63);
    }
  }
  return out;
}

/** Strict UTF-8 decode; returns null on malformed input (overlong, surrogates, truncation). */
const NON_ASCII = /[\u0080-\u00ff]/;

export function utf8Decode(b: Uint8Array): string | null {
  // The common case, all ASCII: the bytes as code units, checked by the regex engine.
  const latin1 = fromCodes(b, 0, b.length);
  if (!NON_ASCII.test(latin1)) return latin1;
  let ascii = 0;
  while (b[ascii] < 0x80) ascii++;
  const codes: number[] = [];
  for (let k = 0; k < ascii; k++) codes.push(b[k]);
  let i = ascii;
  while (i < b.length) {
    const c = b[i];
    let cp: number;
    let n: number;
    if (c < 0x80) { cp = c; n = 0; }
    else if (c >= 0xc2 && c <= 0xdf) { cp = c & 31; n = 1; }
    else if (c >= 0xe0 && c <= 0xef) { cp = c & 15; n = 2; }
    else if (c >= 0xf0 && c <= 0xf4) { cp = c & 7; n = 3; }
    else return null;
    if (i + n > b.length - 1) return null; // truncated sequence
    for (let k = 1; k <= n; k++) {
      const d = b[i + k];
      if ((d & 0xc0) !== 0x80) return null;
      cp = (cp << 6) | (d & 63);
    }
    if ((n === 2 && cp < 0x800) || (n === 3 && (cp < 0x10000 || cp > 0x10ffff))) return null;
    if (cp >= 0xd800 && cp <= 0xdfff) return null;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      codes.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 1023));
    } else codes.push(cp);
    i += n + 1;
  }
  return fromCodes(codes, 0, codes.length);
}

/** Decode bytes that must be printable ASCII (0x20..0x7e); null otherwise. */
const NOT_PRINTABLE = /[^\u0020-\u007e]/;

export function asciiDecode(b: Uint8Array): string | null {
  const s = fromCodes(b, 0, b.length);
  return NOT_PRINTABLE.test(s) ? null : s;
}

export function isUint(n: unknown, max: number): n is number {
  return typeof n === 'number' && n >= 0 && n <= max && Math.floor(n) === n;
}
