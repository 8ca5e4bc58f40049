/**
 * A `Signer` whose ed25519 private key stays in a PKCS#11 token (an HSM, a YubiHSM 2, a
 * Nitrokey HSM 2, SoftHSM 2 in tests), named by a PKCS#11 URI (RFC 7512):
 *
 *   pkcs11:token=Signet;object=targets-hsm?module-path=/usr/lib/softhsm/libsofthsm2.so
 *
 * Path attributes: `token` (label), `object` (key label), `id` (CKA_ID, %-encoded),
 * `slot-id`. Query attributes: `module-path` (else $SIGNET_PKCS11_MODULE), `pin-source`
 * (`file:` path) or `pin-value` (else $SIGNET_PKCS11_PIN). Exactly one private key must match.
 * Mechanism CKM_EDDSA (PKCS#11 3.0; SoftHSM 2.6 with OpenSSL ≥ 1.1.1 has it). The adapter: the
 * only file that loads the binding (pkcs11js).
 */
import { readFileSync } from 'node:fs';
import { nodeCrypto } from '../image/crypto-node';
import { keyIdOf, publicKeyObject, type Signer } from '../ota/metadata';
import { KeyError } from './errors';

export const PKCS11_PIN_ENV = 'SIGNET_PKCS11_PIN';
export const PKCS11_MODULE_ENV = 'SIGNET_PKCS11_MODULE';

// PKCS#11 3.0 values the binding's typings do not name.
const CKK_EC_EDWARDS = 0x40;
const CKM_EDDSA = 0x1057;

export interface Pkcs11Uri {
  token?: string;
  object?: string;
  id?: Buffer;
  slotId?: number;
  modulePath?: string;
  pin?: string;
}

function pct(v: string, what: string): Buffer {
  if (/%(?![0-9a-fA-F]{2})/.test(v)) throw new KeyError('E_KEY_PKCS11', `bad %-escape in the PKCS#11 URI's ${what}`);
  const out: number[] = [];
  for (let i = 0; i < v.length; i++) {
    if (v[i] === '%') {
      out.push(parseInt(v.slice(i + 1, i + 3), 16));
      i += 2;
    } else out.push(...Buffer.from(v[i], 'utf8'));
  }
  return Buffer.from(out);
}

/** Parse a `pkcs11:` URI (RFC 7512 §2.3); unknown path attributes are refused (fail closed). */
export function parsePkcs11Uri(uri: string): Pkcs11Uri {
  if (!uri.startsWith('pkcs11:')) throw new KeyError('E_KEY_PKCS11', 'a PKCS#11 key is named by a URI starting with pkcs11:');
  const rest = uri.slice('pkcs11:'.length);
  const q = rest.indexOf('?');
  const path = q < 0 ? rest : rest.slice(0, q);
  const query = q < 0 ? '' : rest.slice(q + 1);
  const out: Pkcs11Uri = {};
  for (const part of path.split(';').filter((x) => x !== '')) {
    const eq = part.indexOf('=');
    if (eq < 1) throw new KeyError('E_KEY_PKCS11', `PKCS#11 URI attribute "${part.slice(0, 40)}" has no value`);
    const k = part.slice(0, eq);
    const v = part.slice(eq + 1);
    if (k === 'token') out.token = pct(v, k).toString('utf8');
    else if (k === 'object') out.object = pct(v, k).toString('utf8');
    else if (k === 'id') out.id = pct(v, k);
    else if (k === 'slot-id') {
      if (!/^\d{1,10}$/.test(v)) throw new KeyError('E_KEY_PKCS11', 'slot-id must be a number');
      out.slotId = Number(v);
    } else if (k === 'type') {
      if (v !== 'private') throw new KeyError('E_KEY_PKCS11', 'a signing key is type=private');
    } else if (!['manufacturer', 'model', 'serial', 'library-manufacturer', 'library-description', 'library-version'].includes(k)) {
      throw new KeyError('E_KEY_PKCS11', `PKCS#11 URI attribute "${k}" is not one Signet understands`);
    }
  }
  for (const part of query.split('&').filter((x) => x !== '')) {
    const eq = part.indexOf('=');
    const k = eq < 0 ? part : part.slice(0, eq);
    const v = eq < 0 ? '' : pct(part.slice(eq + 1), k).toString('utf8');
    if (k === 'module-path') out.modulePath = v;
    else if (k === 'pin-value') out.pin = v;
    else if (k === 'pin-source') {
      const file = v.startsWith('file:') ? v.slice(5) : v;
      try {
        out.pin = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
      } catch (e) {
        throw new KeyError('E_KEY_PKCS11', 'cannot read the PIN from ' + file, e);
      }
    } else if (k !== 'module-name') throw new KeyError('E_KEY_PKCS11', `PKCS#11 URI query attribute "${k}" is not one Signet understands`);
  }
  if (!out.object && !out.id) throw new KeyError('E_KEY_PKCS11', 'the PKCS#11 URI must name the key with object= or id=');
  return out;
}

type Binding = typeof import('pkcs11js');

const modules = new Map<string, InstanceType<Binding['PKCS11']>>();

/** Loaded on first use only: a CLI run that signs from files never loads the native addon. */
async function binding(): Promise<Binding> {
  try {
    const m = (await import('pkcs11js')) as Binding & { default?: Binding };
    return m.default ?? m;
  } catch (e) {
    throw new KeyError('E_KEY_PKCS11', 'the PKCS#11 binding (pkcs11js) is not installed or did not build', e);
  }
}

/** The raw 32-byte ed25519 public key from CKA_EC_POINT (DER OCTET STRING or raw, as tokens differ). */
function rawEdwardsPoint(v: Buffer): Uint8Array {
  if (v.length === 34 && v[0] === 0x04 && v[1] === 0x20) return new Uint8Array(v.subarray(2));
  if (v.length === 32) return new Uint8Array(v);
  throw new KeyError('E_KEY_PKCS11', 'the token\'s public key is not an ed25519 point');
}

/**
 * Open the token, log in, find the one private key the URI names and its public key. The
 * session stays open for the process (a CLI command signs a few times and exits).
 */
export function loadPkcs11Signer(uri: string): Promise<Signer> {
  return openPkcs11Key(uri, false);
}

/**
 * `signet keys new --out pkcs11:…`: generate an ed25519 key pair inside the token (private
 * half sensitive and not extractable), labelled `object=` (and `id=` if given). Refused if the
 * token already holds a key the URI names.
 */
export function generatePkcs11Key(uri: string): Promise<Signer> {
  return openPkcs11Key(uri, true);
}

// RFC 8410 id-Ed25519 (1.3.101.112) as DER, the CKA_EC_PARAMS of an Edwards key (PKCS#11 3.0 §2.3.10).
const ED25519_OID_DER = Buffer.from([0x06, 0x03, 0x2b, 0x65, 0x70]);
const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;

/** An open, logged-in session on the one token a URI names (shared by the ed25519 and RSA keys). */
export interface TokenSession {
  p11: Binding;
  lib: InstanceType<Binding['PKCS11']>;
  session: Buffer;
  u: Pkcs11Uri;
  /** The URI without its query (no module path or PIN), for messages. */
  name: string;
  pin: string | undefined;
  /** Objects of class `cls` and key type `keyType` (any type if undefined) the URI names; at most 2. */
  find(cls: number, keyType?: number): Buffer[];
  fail(what: string, e: unknown): never;
  close(): void;
}

export async function openToken(uri: string, rw: boolean): Promise<TokenSession> {
  const u = parsePkcs11Uri(uri);
  const name = uri.split('?')[0];
  const modulePath = u.modulePath || process.env[PKCS11_MODULE_ENV];
  if (!modulePath) throw new KeyError('E_KEY_PKCS11', `no PKCS#11 module: add ?module-path=… to the URI or set ${PKCS11_MODULE_ENV}`);
  const pin = u.pin ?? process.env[PKCS11_PIN_ENV];
  const p11 = await binding();
  const fail = (what: string, e: unknown): never => {
    throw new KeyError('E_KEY_PKCS11', what + ': ' + String((e as Error)?.message ?? e).split('\n')[0], e);
  };
  // One loaded, initialized module per path for the process: C_Initialize may run only once.
  let lib = modules.get(modulePath);
  if (!lib) {
    const l = new p11.PKCS11();
    try {
      l.load(modulePath);
      try {
        l.C_Initialize();
      } catch (e) {
        // Another loader in this process (a test runner's earlier module instance) did it first.
        if (!/CKR_CRYPTOKI_ALREADY_INITIALIZED/.test(String((e as Error).message))) throw e;
      }
    } catch (e) {
      fail('cannot load the PKCS#11 module ' + modulePath, e);
    }
    modules.set(modulePath, l);
    lib = l;
  }
  const slots = lib.C_GetSlotList(true).filter((s) => {
    if (u.slotId !== undefined && s.readUIntLE(0, Math.min(6, s.length)) !== u.slotId) return false;
    if (u.token === undefined) return true;
    return lib.C_GetTokenInfo(s).label.trim() === u.token;
  });
  if (slots.length !== 1) {
    throw new KeyError('E_KEY_PKCS11', slots.length ? `${slots.length} tokens match ${name}; add token= or slot-id=` : `no token matches ${name}`);
  }
  const session = lib.C_OpenSession(slots[0], p11.CKF_SERIAL_SESSION | (rw ? p11.CKF_RW_SESSION : 0));
  const close = () => {
    try { lib.C_CloseSession(session); } catch { /* closing after a failure */ }
  };
  try {
    if (pin !== undefined) {
      try {
        lib.C_Login(session, p11.CKU_USER, pin);
      } catch (e) {
        if (!/CKR_USER_ALREADY_LOGGED_IN/.test(String((e as Error).message))) fail('the token refused the PIN', e);
      }
    }
  } catch (e) {
    close();
    throw e;
  }
  const find = (cls: number, keyType?: number) => {
    const t: { type: number; value: number | string | Buffer }[] = [{ type: p11.CKA_CLASS, value: cls }];
    if (keyType !== undefined) t.push({ type: p11.CKA_KEY_TYPE, value: keyType });
    if (u.object !== undefined) t.push({ type: p11.CKA_LABEL, value: u.object });
    if (u.id !== undefined) t.push({ type: p11.CKA_ID, value: u.id });
    lib.C_FindObjectsInit(session, t);
    const hs = lib.C_FindObjects(session, 2);
    lib.C_FindObjectsFinal(session);
    return hs;
  };
  return { p11, lib, session, u, name, pin, find, fail, close };
}

/** Why no private key of the wanted type matched: another type by that name, or nothing (no PIN?). */
export function noKeyMessage(t: TokenSession, want: string, found: number): string {
  if (found > 1) return `more than one ${want} private key matches ${t.name}`;
  if (t.find(t.p11.CKO_PRIVATE_KEY).length) return `the key ${t.name} is not an ${want} key (wrong key type for this use)`;
  return `no ${want} private key matches ${t.name}` + (t.pin === undefined ? ` (no PIN given: set ${PKCS11_PIN_ENV})` : '');
}

async function openPkcs11Key(uri: string, generate: boolean): Promise<Signer> {
  if (generate && parsePkcs11Uri(uri).object === undefined) throw new KeyError('E_KEY_PKCS11', 'a key made in a token needs a label: object=');
  const t = await openToken(uri, generate);
  const { p11, lib, session, u, pin, fail } = t;
  const find = (cls: number) => t.find(cls, CKK_EC_EDWARDS);
  try {
    if (generate) {
      if (pin === undefined) throw new KeyError('E_KEY_PKCS11', `making a key in a token needs its PIN: set ${PKCS11_PIN_ENV}`);
      if (t.find(p11.CKO_PRIVATE_KEY).length || t.find(p11.CKO_PUBLIC_KEY).length) {
        throw new KeyError('E_KEYS_EXIST', `the token already holds a key named by ${t.name}`);
      }
      const common: { type: number; value: boolean | number | string | Buffer }[] = [{ type: p11.CKA_TOKEN, value: true }, { type: p11.CKA_LABEL, value: u.object! }, { type: p11.CKA_KEY_TYPE, value: CKK_EC_EDWARDS }];
      if (u.id !== undefined) common.push({ type: p11.CKA_ID, value: u.id });
      try {
        lib.C_GenerateKeyPair(session, { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN },
          [...common, { type: p11.CKA_VERIFY, value: true }, { type: p11.CKA_EC_PARAMS, value: ED25519_OID_DER }],
          [...common, { type: p11.CKA_SIGN, value: true }, { type: p11.CKA_PRIVATE, value: true }, { type: p11.CKA_SENSITIVE, value: true }, { type: p11.CKA_EXTRACTABLE, value: false }]);
      } catch (e) {
        fail('the token could not make an ed25519 key (does it support CKM_EC_EDWARDS_KEY_PAIR_GEN?)', e);
      }
    }
    const priv = find(p11.CKO_PRIVATE_KEY);
    if (priv.length !== 1) throw new KeyError('E_KEY_PKCS11', noKeyMessage(t, 'ed25519', priv.length));
    const pub = find(p11.CKO_PUBLIC_KEY);
    if (pub.length !== 1) throw new KeyError('E_KEY_PKCS11', `the token holds no single ed25519 public key beside ${t.name}`);
    const point = lib.C_GetAttributeValue(session, pub[0], [{ type: p11.CKA_EC_POINT }])[0].value as Buffer;
    const publicKey = rawEdwardsPoint(point);
    const keyid = keyIdOf(publicKeyObject(publicKey), nodeCrypto);
    const key = priv[0];
    return {
      keyid,
      publicKey,
      sign(message: Uint8Array): Uint8Array {
        try {
          lib.C_SignInit(session, { mechanism: CKM_EDDSA }, key);
          const sig = new Uint8Array(lib.C_Sign(session, Buffer.from(message), Buffer.alloc(64)));
          // A token that signs with another key or scheme (Ed25519ph, a context) fails here, not on a device.
          if (!nodeCrypto.ed25519Verify(sig, message, publicKey)) throw new KeyError('E_KEY_PKCS11', 'the token returned a signature that does not verify with its public key');
          return sig;
        } catch (e) {
          if (e instanceof KeyError) throw e;
          return fail('the token could not sign with ' + t.name, e);
        }
      },
    };
  } catch (e) {
    t.close();
    if (e instanceof KeyError) throw e;
    return fail('PKCS#11 error', e);
  }
}
