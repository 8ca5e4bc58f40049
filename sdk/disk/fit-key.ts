/**
 * The vendor's FIT signing key, `<keys>/fit.key` from `signet keys init`: RSA-2048, PKCS#8 PEM,
 * encrypted when the key set was made with --encrypt (passphrase from SIGNET_PASSPHRASE or a
 * prompt, as for every other key). Node's crypto decrypts; sdk/fit's node-forge adapter signs.
 * Or, with `--key` (`keySpec`), another key file or an RSA-2048 key in a PKCS#11 token
 * (`pkcs11:…`, sdk/keys/pkcs11-rsa.ts), which signs inside the token.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { ForgeRsaSigner } from '../fit/rsa';
import type { RsaPublicKey, RsaSigner } from '../fit/signer';
import { isEncryptedPem, readKeyFile } from '../keys/keyfile';
import { envOrPromptPassphrase, type PassphraseSource } from '../keys/passphrase';
import { DiskError } from './errors';

export const FIT_KEY_FILE = 'fit.key';
/** key-name-hint in the FIT and key-<name> in U-Boot's DTB: the key file's base name, as mkimage does. */
export const FIT_KEY_NAME = 'fit';

/** What signs a FIT: a key file's (ForgeRsaSigner) or a token's (Pkcs11RsaKey). */
export type FitSigner = RsaSigner & { publicKey(): RsaPublicKey };

export async function loadFitSigner(keysDir: string, passphrases: PassphraseSource = envOrPromptPassphrase, keySpec?: string): Promise<FitSigner> {
  if (keySpec?.startsWith('pkcs11:')) {
    const { loadPkcs11RsaKey } = await import('../keys/pkcs11-rsa');
    return loadPkcs11RsaKey(keySpec, 2048);
  }
  const path = keySpec ?? join(keysDir, FIT_KEY_FILE);
  let pem: string;
  try {
    pem = readKeyFile(path, 'FIT key');
  } catch (cause) {
    throw new DiskError('E_FIT_KEY', (cause as Error).message, 'pass the folder written by `signet keys init` with --keys', cause);
  }
  let key: KeyObject;
  try {
    key = isEncryptedPem(pem)
      ? createPrivateKey({ key: pem, format: 'pem', passphrase: await passphrases.get(path, false) })
      : createPrivateKey({ key: pem, format: 'pem' });
  } catch (cause) {
    if ((cause as { code?: string }).code === 'E_PASSPHRASE') throw cause;
    throw new DiskError('E_FIT_KEY', `${path} cannot be read as a private key (wrong passphrase?)`, 'check SIGNET_PASSPHRASE, or recreate the key set', cause);
  }
  if (key.asymmetricKeyType !== 'rsa' || key.asymmetricKeyDetails?.modulusLength !== 2048) {
    throw new DiskError('E_FIT_KEY', `${path} is not an RSA-2048 key (U-Boot verified boot here uses sha256,rsa2048)`, 'recreate it with `signet keys init`');
  }
  return ForgeRsaSigner.fromPem(key.export({ format: 'pem', type: 'pkcs8' }) as string);
}
