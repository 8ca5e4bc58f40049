/**
 * RSA keys in a PKCS#11 token: the U-Boot FIT signing key (sha256,rsa2048) and the vendor CA
 * key that signs device, admin and server certificates. Named by a `pkcs11:` URI like the
 * ed25519 keys (pkcs11.ts opens the token). The token signs RSASSA-PKCS1-v1_5 with
 * CKM_RSA_PKCS over the SHA-256 DigestInfo of a digest the caller computed (the FIT's hashed
 * configuration, node-forge's TBSCertificate): the same bytes a key file's signature has, so a
 * FIT signed in the token is byte-identical to one signed with the same key from a file. Every
 * signature is checked with the token's public key before it is used.
 */
import { constants, createPublicKey, publicDecrypt, type KeyObject } from 'node:crypto';
import { SHA256_DIGEST_INFO_PREFIX } from '../fit/pkcs1';
import type { RsaPublicKey, RsaSigner } from '../fit/signer';
import { KeyError } from './errors';
import { noKeyMessage, openToken, PKCS11_PIN_ENV, type TokenSession } from './pkcs11';

function unsigned(b: Buffer): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return new Uint8Array(b.subarray(i));
}

export class Pkcs11RsaKey implements RsaSigner {
  readonly #t: TokenSession;
  readonly #key: Buffer;
  readonly #pub: RsaPublicKey;
  readonly #pubKey: KeyObject;
  /** The key's URI without the query (for messages). */
  readonly name: string;
  readonly bits: number;

  constructor(t: TokenSession, key: Buffer, pub: RsaPublicKey) {
    this.#t = t;
    this.#key = key;
    this.#pub = pub;
    this.name = t.name;
    const b64 = (x: Uint8Array) => Buffer.from(x).toString('base64url');
    this.#pubKey = createPublicKey({ key: { kty: 'RSA', n: b64(pub.modulus), e: b64(pub.exponent) }, format: 'jwk' });
    this.bits = this.#pubKey.asymmetricKeyDetails?.modulusLength ?? 0;
  }

  /** RSASSA-PKCS1-v1_5 over a SHA-256 digest, made by the token (CKM_RSA_PKCS over the DigestInfo). */
  sign(sha256Digest: Uint8Array): Uint8Array {
    if (sha256Digest.length !== 32) throw new KeyError('E_KEY_PKCS11', `digest is ${sha256Digest.length} bytes, expected SHA-256`);
    const { lib, p11, session } = this.#t;
    const digestInfo = Buffer.concat([SHA256_DIGEST_INFO_PREFIX, sha256Digest]);
    let sig: Buffer;
    try {
      lib.C_SignInit(session, { mechanism: p11.CKM_RSA_PKCS }, this.#key);
      sig = lib.C_Sign(session, digestInfo, Buffer.alloc(this.#pub.modulus.length + 8));
    } catch (e) {
      return this.#t.fail('the token could not sign with ' + this.name, e);
    }
    let back: Buffer | null = null;
    try {
      back = publicDecrypt({ key: this.#pubKey, padding: constants.RSA_PKCS1_PADDING }, sig);
    } catch {
      back = null;
    }
    if (!back || !back.equals(digestInfo)) throw new KeyError('E_KEY_PKCS11', 'the token returned a signature that does not verify with its public key');
    return new Uint8Array(sig);
  }

  publicKey(): RsaPublicKey {
    return { modulus: this.#pub.modulus.slice(), exponent: this.#pub.exponent.slice() };
  }

  /** The public key as SPKI PEM (to compare with a certificate's, or to hand out). */
  publicKeyPem(): string {
    return this.#pubKey.export({ format: 'pem', type: 'spki' }) as string;
  }
}

/**
 * The one RSA private key (and its public key) a URI names. `bits`: the modulus size the use
 * needs (2048 for U-Boot's rsa2048), or the least it accepts when `atLeast`.
 */
export async function loadPkcs11RsaKey(uri: string, bits: number, atLeast = false): Promise<Pkcs11RsaKey> {
  return open(uri, false, bits, atLeast);
}

/** `signet keys new --role fit|ca --out pkcs11:…`: an RSA key pair made in the token, never extractable. */
export async function generatePkcs11RsaKey(uri: string, bits: number): Promise<Pkcs11RsaKey> {
  return open(uri, true, bits, false);
}

async function open(uri: string, generate: boolean, bits: number, atLeast: boolean): Promise<Pkcs11RsaKey> {
  const t = await openToken(uri, generate);
  const { p11, lib, session, u } = t;
  try {
    if (generate) {
      if (u.object === undefined) throw new KeyError('E_KEY_PKCS11', 'a key made in a token needs a label: object=');
      if (t.pin === undefined) throw new KeyError('E_KEY_PKCS11', `making a key in a token needs its PIN: set ${PKCS11_PIN_ENV}`);
      if (t.find(p11.CKO_PRIVATE_KEY).length || t.find(p11.CKO_PUBLIC_KEY).length) {
        throw new KeyError('E_KEYS_EXIST', `the token already holds a key named by ${t.name}`);
      }
      const common: { type: number; value: boolean | number | string | Buffer }[] = [{ type: p11.CKA_TOKEN, value: true }, { type: p11.CKA_LABEL, value: u.object }, { type: p11.CKA_KEY_TYPE, value: p11.CKK_RSA }];
      if (u.id !== undefined) common.push({ type: p11.CKA_ID, value: u.id });
      try {
        lib.C_GenerateKeyPair(session, { mechanism: p11.CKM_RSA_PKCS_KEY_PAIR_GEN },
          [...common, { type: p11.CKA_VERIFY, value: true }, { type: p11.CKA_MODULUS_BITS, value: bits }, { type: p11.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }],
          [...common, { type: p11.CKA_SIGN, value: true }, { type: p11.CKA_PRIVATE, value: true }, { type: p11.CKA_SENSITIVE, value: true }, { type: p11.CKA_EXTRACTABLE, value: false }]);
      } catch (e) {
        t.fail(`the token could not make an RSA-${bits} key`, e);
      }
    }
    const priv = t.find(p11.CKO_PRIVATE_KEY, p11.CKK_RSA);
    if (priv.length !== 1) throw new KeyError('E_KEY_PKCS11', noKeyMessage(t, 'RSA', priv.length));
    const pubs = t.find(p11.CKO_PUBLIC_KEY, p11.CKK_RSA);
    // The public half from its own object, or (tokens that keep none) from the private key's attributes.
    const holder = pubs.length === 1 ? pubs[0] : priv[0];
    let attrs: { value?: unknown }[];
    try {
      attrs = lib.C_GetAttributeValue(session, holder, [{ type: p11.CKA_MODULUS }, { type: p11.CKA_PUBLIC_EXPONENT }]);
    } catch (e) {
      return t.fail('the token does not give the public key of ' + t.name, e);
    }
    const pub = { modulus: unsigned(attrs[0].value as Buffer), exponent: unsigned(attrs[1].value as Buffer) };
    const key = new Pkcs11RsaKey(t, priv[0], pub);
    if (atLeast ? key.bits < bits : key.bits !== bits) {
      throw new KeyError('E_KEY_PKCS11', `${t.name} is an RSA-${key.bits} key; this use needs RSA-${bits}${atLeast ? ' or more' : ''}`);
    }
    return key;
  } catch (e) {
    t.close();
    if (e instanceof KeyError) throw e;
    return t.fail('PKCS#11 error', e);
  }
}
