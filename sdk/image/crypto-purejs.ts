/** Pure-JS crypto: tweetnacl for ed25519 and our SHA-256. Runs unchanged on Duktape. */
import nacl from 'tweetnacl';
import { Sha256, sha256 } from '../util/sha256';
import type { ImageCrypto } from './crypto';
import { ed25519Acceptable } from './ed25519-rules';

/** A host's one-shot SHA-256 (the boot stage's C host exposes one). */
export type NativeSha256 = (data: Uint8Array) => Uint8Array;
/** A host's plain ed25519 verification (the C host's: libsodium). Only a returned `true` counts. */
export type NativeEd25519Verify = (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) => boolean;

function tweetnaclVerify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  return nacl.sign.detached.verify(message, signature, publicKey);
}

/**
 * Build a pure-JS crypto, optionally with a faster native SHA-256 and/or a native ed25519
 * verification supplied by the host (the boot stage's C host exposes both).
 *
 * Whichever ed25519 implementation runs, the rules of `ed25519-rules.ts` (S < L, no
 * small-order R or A, canonical A) are checked first, in JS: tweetnacl skips the first (a
 * signature with S + L would verify there and not under OpenSSL or libsodium) and all three
 * otherwise differ only on the inputs those rules refuse, so every implementation gives the same
 * answer on every input (tests/native-ed25519.test.ts).
 */
export function makePureJsCrypto(nativeSha256?: NativeSha256, nativeEd25519Verify?: NativeEd25519Verify): ImageCrypto {
  const verify = nativeEd25519Verify || tweetnaclVerify;
  return {
    name: 'purejs' + (nativeSha256 ? '+native-sha256' : '') + (nativeEd25519Verify ? '+native-ed25519' : ''),
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
      if (!ed25519Acceptable(signature, publicKey)) return false;
      try {
        return verify(signature, message, publicKey) === true;
      } catch (_e) {
        return false;
      }
    },
  };
}

export const pureJsCrypto: ImageCrypto = makePureJsCrypto();
