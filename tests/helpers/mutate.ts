/**
 * Random mutations of a valid image, shared by the property test (tests/property.test.ts)
 * and the fuzz benchmark (bench/fuzz.ts). Deterministic for a given PRNG.
 */
export type Rand = () => number; // uniform in [0, 1)

export function xorshift(seed: number): Rand {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x20, 0x22, 0x5c, 0x7b, 0x7d];

/** One to four random edits: bit flips, byte sets, truncation, extension, insert, delete, swap. */
export function mutate(img: Uint8Array, rand: Rand): Uint8Array {
  let b = img.slice();
  const edits = 1 + Math.floor(rand() * 4);
  const at = () => Math.floor(rand() * Math.max(1, b.length));
  for (let e = 0; e < edits; e++) {
    switch (Math.floor(rand() * 8)) {
      case 0: { const i = at(); b[i] ^= 1 << Math.floor(rand() * 8); break; }
      case 1: { const i = at(); b[i] = Math.floor(rand() * 256); break; }
      case 2: { const i = at(); b[i] = INTERESTING[Math.floor(rand() * INTERESTING.length)]; break; }
      case 3: b = b.slice(0, at()); break;
      case 4: { const extra = new Uint8Array(1 + Math.floor(rand() * 200)); for (let i = 0; i < extra.length; i++) extra[i] = Math.floor(rand() * 256); const n = new Uint8Array(b.length + extra.length); n.set(b); n.set(extra, b.length); b = n; break; }
      case 5: { const i = at(); const n = new Uint8Array(b.length + 1); n.set(b.subarray(0, i)); n[i] = Math.floor(rand() * 256); n.set(b.subarray(i), i + 1); b = n; break; }
      case 6: { const i = at(); const n = new Uint8Array(Math.max(0, b.length - 1)); n.set(b.subarray(0, i)); n.set(b.subarray(i + 1), i); b = n; break; }
      case 7: { const i = at(); const j = at(); const t = b[i]; b[i] = b[j]; b[j] = t; break; }
    }
  }
  return b;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
