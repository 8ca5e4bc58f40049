/** Signing TUF metadata (workstation and server side; the device only verifies). */
import { toHex } from '../util/bytes';
import { canonicalBytes } from '../util/canonical-json';
import type { Envelope, Signature, Signer } from './metadata';

export async function signEnvelope<T>(signed: T, signers: Signer[]): Promise<Envelope<T>> {
  const bytes = canonicalBytes(signed);
  const signatures: Signature[] = [];
  for (const s of signers) signatures.push({ keyid: s.keyid, sig: toHex(await s.sign(bytes)) });
  return { signatures, signed };
}
