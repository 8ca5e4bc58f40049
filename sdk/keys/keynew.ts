/**
 * `signet keys new`: one new ed25519 key for a role, for a ceremony (a new root holder, a new
 * targets key, fresh online keys). The private key is written 0600 and the public key beside
 * it as the TUF key object `signet root new --add-key` reads. Neither file is overwritten.
 */
import { existsSync, rmSync } from 'node:fs';
import { publicKeyObject, TOP_LEVEL_ROLES, type RoleName } from '../ota/metadata';
import { writeFileAtomic } from '../util/fs-atomic';
import { KeyError } from './errors';
import { generateEd25519, writePrivateKeyFile } from './keyfile';

export interface NewKeyResult {
  role: RoleName;
  keyid: string;
  privatePath: string;
  publicPath: string;
}

/** `holder.key` → `holder.pub`; any other name gets `.pub` appended. */
export function publicPathFor(privatePath: string): string {
  return /\.key$/.test(privatePath) ? privatePath.replace(/\.key$/, '.pub') : privatePath + '.pub';
}

/**
 * RSA keys made in a PKCS#11 token by `keys new --out pkcs11:…` (files come from `keys init`):
 * `fit` signs U-Boot FIT boot images (RSA-2048), `ca` is the vendor CA (device and server certificates).
 */
export const TOKEN_RSA_ROLES = ['fit', 'ca'];

/** Refuse an unknown role or an existing output before anything is asked for or written. */
export function checkNewKey(role: string, out: string, inToken = false): void {
  if (inToken && TOKEN_RSA_ROLES.indexOf(role) >= 0) {
    // an RSA key for a token
  } else if (TOKEN_RSA_ROLES.indexOf(role) >= 0) {
    throw new KeyError('E_KEY_ROLE', `a ${role} key file comes from \`signet keys init\`; \`keys new --role ${role}\` makes one in a PKCS#11 token (--out pkcs11:…)`);
  } else if ((TOP_LEVEL_ROLES as string[]).indexOf(role) < 0) {
    throw new KeyError('E_KEY_ROLE', `unknown role "${role}": use root, targets, snapshot or timestamp`);
  }
  if (out === '') return;
  for (const p of [out, publicPathFor(out)]) if (existsSync(p)) throw new KeyError('E_KEYS_EXIST', p + ' already exists');
}

/** The public half of a key made elsewhere (a token), as the TUF key object `.pub` files hold. */
export function writeNewPublicKey(path: string, raw: Uint8Array): void {
  if (existsSync(path)) throw new KeyError('E_KEYS_EXIST', path + ' already exists');
  writeFileAtomic(path, JSON.stringify(publicKeyObject(raw), null, 2) + '\n');
}

export function newKey(role: string, out: string, passphrase?: string): NewKeyResult {
  checkNewKey(role, out);
  const pub = publicPathFor(out);
  const kp = generateEd25519();
  writePrivateKeyFile(out, kp.privatePem(passphrase));
  try {
    writeFileAtomic(pub, JSON.stringify(kp.publicKey, null, 2) + '\n');
  } catch (e) {
    // Both files or neither.
    rmSync(out, { force: true });
    throw e;
  }
  return { role: role as RoleName, keyid: kp.signer.keyid, privatePath: out, publicPath: pub };
}
