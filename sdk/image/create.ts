/** Assembling and signing app images (workstation side). */
import { fromHex, toHex } from '../util/bytes';
import type { Signer } from '../ota/metadata';
import type { ImageCrypto } from './crypto';
import { ImageError } from './errors';
import { decodeLayout, encodeImage, type SignatureEntry } from './format';
import { decodeManifest, encodeManifest, type Manifest, type PayloadEntry } from './manifest';

export interface PayloadInput {
  name: string;
  type: PayloadEntry['type'];
  data: Uint8Array;
}

/** Build an unsigned image: the manifest's payload entries are computed from the inputs. */
export function createUnsignedImage(
  fields: Omit<Manifest, 'payloads'>,
  payloads: PayloadInput[],
  crypto: ImageCrypto,
): Uint8Array {
  const entries: PayloadEntry[] = payloads.map((p) => ({
    name: p.name,
    type: p.type,
    size: p.data.length,
    sha256: toHex(crypto.sha256(p.data)),
  }));
  const manifest: Manifest = { ...fields, payloads: entries };
  const total = payloads.reduce((n, p) => n + p.data.length, 0);
  const payloadBytes = new Uint8Array(total);
  let off = 0;
  for (const p of payloads) {
    payloadBytes.set(p.data, off);
    off += p.data.length;
  }
  return encodeImage(encodeManifest(manifest), payloadBytes, []);
}

/**
 * Add one signature. The image must be structurally valid and its manifest well-formed; a
 * key that already signed is refused rather than counted twice.
 */
export async function addSignature(image: Uint8Array, signer: Signer): Promise<Uint8Array> {
  const layout = decodeLayout(image);
  decodeManifest(layout.manifestBytes);
  const keyid = fromHex(signer.keyid);
  if (!keyid || keyid.length !== 32) throw new ImageError('E_SIG_BLOCK', 'signer key id is not 32 bytes of hex');
  for (const s of layout.signatures) {
    if (toHex(s.keyid) === signer.keyid) {
      throw new ImageError('E_ALREADY_SIGNED', 'this key (' + signer.keyid.slice(0, 16) + ') has already signed the image');
    }
  }
  const signature = await signer.sign(layout.signedBytes);
  const sigs: SignatureEntry[] = layout.signatures.map((s) => ({ keyid: s.keyid, signature: s.signature }));
  sigs.push({ keyid, signature });
  return encodeImage(layout.manifestBytes, layout.payloadBytes, sigs);
}
