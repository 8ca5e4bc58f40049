/**
 * What `--key` names: a private key file, or a key in a PKCS#11 token (`pkcs11:` URI, RFC
 * 7512). Either way the command gets a `Signer`; the private key stays in the file's closure
 * or in the token.
 */
import type { Signer } from '../ota/metadata';
import { loadSigner } from './keyfile';
import { envOrPromptPassphrase, type PassphraseSource } from './passphrase';

export async function loadSignerSpec(spec: string, passphrases: PassphraseSource = envOrPromptPassphrase): Promise<Signer> {
  if (spec.startsWith('pkcs11:')) {
    const { loadPkcs11Signer } = await import('./pkcs11');
    return loadPkcs11Signer(spec);
  }
  return loadSigner(spec, passphrases);
}
