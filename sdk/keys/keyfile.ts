/**
 * ed25519 key files. Private keys are PKCS#8 PEM (readable by OpenSSL), encrypted with
 * AES-256-CBC/PBKDF2 when a passphrase is given, written atomically with mode 0600. Public
 * keys are TUF key objects (JSON). A loaded key is a `Signer`: the private key stays inside a
 * closure and is never returned.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { nodeCrypto } from '../image/crypto-node';
import { keyIdOf, publicKeyObject, type PublicKey, type Signer } from '../ota/metadata';
import { FileError, MAX_PEM_FILE, readInputText } from '../util/files';
import { writeFileAtomic } from '../util/fs-atomic';
import { KeyError } from './errors';
import { envOrPromptPassphrase, type PassphraseSource } from './passphrase';

export interface Ed25519KeyPair {
  signer: Signer;
  publicKey: PublicKey;
  /** PKCS#8 PEM, encrypted when a passphrase is given. */
  privatePem(passphrase?: string): string;
}

function rawPublic(key: KeyObject): Uint8Array {
  const der = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - 32));
}

function signerFor(priv: KeyObject): Signer {
  const publicKey = rawPublic(priv);
  const keyid = keyIdOf(publicKeyObject(publicKey), nodeCrypto);
  return {
    keyid,
    publicKey,
    sign: (message: Uint8Array) => new Uint8Array(sign(null, message, priv)),
  };
}

export function generateEd25519(): Ed25519KeyPair {
  const { privateKey } = generateKeyPairSync('ed25519');
  const signer = signerFor(privateKey);
  return {
    signer,
    publicKey: publicKeyObject(signer.publicKey),
    privatePem(passphrase?: string): string {
      return privateKey.export(
        passphrase ? { format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase } : { format: 'pem', type: 'pkcs8' },
      ) as string;
    },
  };
}

export function writePrivateKeyFile(path: string, pem: string): void {
  writeFileAtomic(path, pem, 0o600);
}

export function isEncryptedPem(pem: string): boolean {
  return pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----');
}

/**
 * A PEM key or certificate file, read in bounded memory (a regular file of at most
 * MAX_PEM_FILE bytes: not /dev/zero, a FIFO or a huge file), as E_KEY_FILE when it is not.
 */
export function readKeyFile(path: string, what = 'key file'): string {
  try {
    return readInputText(path, MAX_PEM_FILE, what);
  } catch (e) {
    if (e instanceof FileError) throw new KeyError('E_KEY_FILE', e.message, e);
    throw e;
  }
}

/** Load an ed25519 private key file as a Signer, asking for the passphrase only if needed. */
export async function loadSigner(path: string, passphrases: PassphraseSource = envOrPromptPassphrase): Promise<Signer> {
  const pem = readKeyFile(path, 'key file');
  if (!pem.includes('PRIVATE KEY-----')) throw new KeyError('E_KEY_FILE', path + ' is not a PEM private key');
  let key: KeyObject;
  if (isEncryptedPem(pem)) {
    const passphrase = await passphrases.get(path, false);
    try {
      key = createPrivateKey({ key: pem, format: 'pem', passphrase });
    } catch (e) {
      throw new KeyError('E_PASSPHRASE', 'wrong passphrase for ' + path, e);
    }
  } else {
    try {
      key = createPrivateKey({ key: pem, format: 'pem' });
    } catch (e) {
      throw new KeyError('E_KEY_FILE', path + ' is not a readable private key', e);
    }
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new KeyError('E_KEY_FILE', path + ' holds a ' + key.asymmetricKeyType + ' key, expected ed25519');
  }
  return signerFor(key);
}
