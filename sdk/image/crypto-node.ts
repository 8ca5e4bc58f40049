/** Node's native crypto (OpenSSL). Workstation, CI and server side only. */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { ImageCrypto } from './crypto';
import { ed25519Acceptable } from './ed25519-rules';

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const keyCache = new Map<string, KeyObject>();

function publicKeyObject(raw: Uint8Array): KeyObject {
  const hex = Buffer.from(raw).toString('hex');
  let k = keyCache.get(hex);
  if (!k) {
    k = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
    if (keyCache.size > 256) keyCache.clear();
    keyCache.set(hex, k);
  }
  return k;
}

export const nodeCrypto: ImageCrypto = {
  name: 'node',
  sha256(data: Uint8Array): Uint8Array {
    return new Uint8Array(createHash('sha256').update(data).digest());
  },
  sha256Stream() {
    const h = createHash('sha256');
    return { update: (c: Uint8Array) => { h.update(c); }, digest: () => new Uint8Array(h.digest()) };
  },
  ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
    // libsodium's encoding rules first (ed25519-rules.ts), so OpenSSL answers as the device does.
    if (!ed25519Acceptable(signature, publicKey)) return false;
    try {
      return verify(null, message, publicKeyObject(publicKey), signature);
    } catch {
      return false;
    }
  },
};
