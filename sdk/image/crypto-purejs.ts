/** Pure-JS crypto: tweetnacl for ed25519 and our SHA-256. Runs unchanged on Duktape. */
import nacl from 'tweetnacl';
import { Sha256, sha256 } from '../util/sha256';
import type { ImageCrypto } from './crypto';

/**
 * Build a pure-JS crypto, optionally with a faster native SHA-256 supplied by the host
 * (the boot stage's C host exposes one); ed25519 stays tweetnacl.
 */
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
      try {
        return nacl.sign.detached.verify(message, signature, publicKey);
      } catch (_e) {
        return false;
      }
    },
  };
}

export const pureJsCrypto: ImageCrypto = makePureJsCrypto();
