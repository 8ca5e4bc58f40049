/**
 * sdk/util/bytes.ts builds strings in chunks and uses the engine's TextEncoder where it gives
 * the same bytes (Duktape interns every string, so char-by-char building was quadratic in the
 * guest). These are the straightforward char-by-char versions it replaced, kept as the
 * reference: the fast ones must agree with them on every input, including lone surrogates and
 * malformed UTF-8.
 */
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { asciiDecode, utf8Decode, utf8Encode } from '../sdk/util/bytes';

const runs = Number(process.env.SIGNET_PROPERTY_RUNS ?? 300);

function refEncode(s: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(out);
}

function refDecode(b: Uint8Array): string | null {
  let s = '';
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    let cp: number;
    let n: number;
    if (c < 0x80) { cp = c; n = 0; }
    else if (c >= 0xc2 && c <= 0xdf) { cp = c & 31; n = 1; }
    else if (c >= 0xe0 && c <= 0xef) { cp = c & 15; n = 2; }
    else if (c >= 0xf0 && c <= 0xf4) { cp = c & 7; n = 3; }
    else return null;
    if (i + n > b.length - 1) return null;
    for (let k = 1; k <= n; k++) {
      const d = b[i + k]!;
      if ((d & 0xc0) !== 0x80) return null;
      cp = (cp << 6) | (d & 63);
    }
    if ((n === 2 && cp < 0x800) || (n === 3 && (cp < 0x10000 || cp > 0x10ffff))) return null;
    if (cp >= 0xd800 && cp <= 0xdfff) return null;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      s += String.fromCharCode(0xd800 + (cp >> 10), 0xdc00 + (cp & 1023));
    } else s += String.fromCharCode(cp);
    i += n + 1;
  }
  return s;
}

function refAscii(b: Uint8Array): string | null {
  let s = '';
  for (let i = 0; i < b.length; i++) {
    if (b[i]! < 0x20 || b[i]! > 0x7e) return null;
    s += String.fromCharCode(b[i]!);
  }
  return s;
}

/** Strings with every kind of code unit, lone surrogates included, some long (chunking). */
const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 300 }),
  fc.string({ unit: 'grapheme-ascii', minLength: 4000, maxLength: 10_000 }),
);

describe('UTF-8 and ASCII codecs', () => {
  it('encode agrees with the char-by-char reference (TextEncoder used only where it agrees)', () => {
    fc.assert(fc.property(anyString, (s) => Buffer.from(utf8Encode(s)).equals(Buffer.from(refEncode(s)))), { numRuns: runs });
    const lone = 'x'.repeat(100) + '\ud800' + 'y'.repeat(100) + '\udc00';
    expect(Buffer.from(utf8Encode(lone)).equals(Buffer.from(refEncode(lone)))).toBe(true);
    expect(utf8Encode(lone).length).toBe(206); // each lone surrogate as 3 bytes, not U+FFFD
  });

  it('encode without an engine TextEncoder (as in the vm realm of node-host.ts) gives the same bytes', async () => {
    const g = globalThis as { TextEncoder?: unknown };
    const saved = g.TextEncoder;
    delete g.TextEncoder;
    try {
      vi.resetModules();
      const fresh = await import('../sdk/util/bytes');
      const s = 'é€😀'.repeat(50) + 'a'.repeat(100) + '\ud800';
      expect(Buffer.from(fresh.utf8Encode(s)).equals(Buffer.from(refEncode(s)))).toBe(true);
      fc.assert(fc.property(anyString, (x) => Buffer.from(fresh.utf8Encode(x)).equals(Buffer.from(refEncode(x)))), { numRuns: 50 });
    } finally {
      g.TextEncoder = saved;
    }
  });

  it('decode agrees with the reference on valid text, random bytes and mutations of text', () => {
    fc.assert(fc.property(anyString, (s) => utf8Decode(refEncode(s)) === refDecode(refEncode(s))), { numRuns: runs });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (b) => utf8Decode(b) === refDecode(b)), { numRuns: runs * 3 });
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), fc.nat(), fc.integer({ min: 0, max: 255 }), (s, at, v) => {
        const b = refEncode(s);
        if (b.length) b[at % b.length] = v;
        return utf8Decode(b) === refDecode(b);
      }),
      { numRuns: runs * 3 },
    );
    const big = new Uint8Array(randomBytes(100_000)).map((x) => x & 0x7f);
    expect(utf8Decode(big)).toBe(refDecode(big));
    expect(utf8Decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x41]))).toBe('\ufeffA'); // a BOM is kept
  });

  it('asciiDecode agrees with the reference', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 9000 }), (b) => asciiDecode(b) === refAscii(b)), { numRuns: runs });
    const text = new Uint8Array(9000).map((_, i) => 0x20 + (i % 95));
    expect(asciiDecode(text)).toBe(refAscii(text));
    expect(asciiDecode(text.subarray(100, 8000))).toBe(refAscii(text.subarray(100, 8000)));
  });
});
