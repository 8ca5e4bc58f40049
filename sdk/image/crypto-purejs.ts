/** Pure-JS crypto: tweetnacl for ed25519 and our SHA-256. Runs unchanged on Duktape. */
import nacl from 'tweetnacl';
import { Sha256, sha256 } from '../util/sha256';
import type { ImageCrypto } from './crypto';

/**
 * Build a pure-JS crypto, optionally with a faster native SHA-256 supplied by the host
 * (the boot stage's C host exposes one); ed25519 stays tweetnacl.
 */
/** The group order L, little-endian, as in RFC 8032 §5.1.7. */
const L = [
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/**
 * RFC 8032 §5.1.7 requires S < L. tweetnacl skips this check (so a signature with S + L would
 * verify there and not under OpenSSL); we add it so both implementations agree and
 * signatures are not malleable.
 */
function scalarIsCanonical(sig: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    const s = sig[32 + i];
    if (s < L[i]) return true;
    if (s > L[i]) return false;
  }
  return false; // S == L
}

export function makePureJsCrypto(nativeSha256?: (data: Uint8Array) => Uint8Array): ImageCrypto {
  return {
    name: nativeSha256 ? 'purejs+native-sha256' : 'purejs',
    sha256: nativeSha256 || sha256,
    sha256Stream: function () {
      if (!nativeSha256) {
        const h = new Sha256();
        return { update: function (c: Uint8Array) { h.update(c); }, digest: function () { return h.digest(); } };
      }
      // A native one-shot hash cannot stream; collect chunks (the boot stage reads whole slots).
      const chunks: Uint8Array[] = [];
      let n = 0;
      return {
        update: function (c: Uint8Array) { chunks.push(c); n += c.length; },
        digest: function () {
          const all = new Uint8Array(n);
          let o = 0;
          for (let i = 0; i < chunks.length; i++) { all.set(chunks[i], o); o += chunks[i].length; }
          return nativeSha256(all);
        },
      };
    },
    ed25519Verify: function (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
      if (signature.length !== 64 || publicKey.length !== 32) return false;
      if (!scalarIsCanonical(signature)) return false;
      try {
        return nacl.sign.detached.verify(message, signature, publicKey);
      } catch (_e) {
        return false;
      }
    },
  };
}

export const pureJsCrypto: ImageCrypto = makePureJsCrypto();
