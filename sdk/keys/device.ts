/**
 * Identities issued by the vendor CA: `signet device enroll` (a device's key and certificate,
 * or an admin's with --admin) and the update server's TLS certificate.
 *
 * An identity folder holds `client.crt`, `client.key` (mode 0600), `vendor-ca.crt` (to
 * authenticate the server) and `identity.json`; it is written under a temp name and renamed,
 * so a failed enrolment leaves nothing behind.
 */
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { RsaSigner } from '../fit/signer';
import { join } from 'node:path';
import { loadBoard } from '../board';
import { FileError, MAX_PEM_FILE, readInputText } from '../util/files';
import { createDirAtomic, outputFolderState, writeFileAtomic } from '../util/fs-atomic';
import { IdentityError } from './device-errors';
import { issueCertificate, type CertRole } from './device-x509';
import { parseServerHosts } from './host-names';
import { isEncryptedPem } from './keyfile';
import { envOrPromptPassphrase, type PassphraseSource } from './passphrase';

export const IDENTITY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** A rollout channel name; a device is enrolled for one (default `stable`). */
export const CHANNEL_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;
export const DEFAULT_DEVICE_CHANNEL = 'stable';
export const DEFAULT_DEVICE_DAYS = 3650;
export const DEFAULT_ADMIN_DAYS = 365;

export const IDENTITY_FILES = { cert: 'client.crt', key: 'client.key', ca: 'vendor-ca.crt', info: 'identity.json' } as const;

export interface IdentityInfo {
  id: string;
  role: 'device' | 'admin';
  serial: string;
  notAfter: string;
  /** Devices: the board and channel bound into the certificate at enrollment. */
  board?: string;
  channel?: string;
}

export interface Identity extends IdentityInfo {
  certPem: string;
  keyPem: string;
  caPem: string;
}

export interface VendorCa {
  certPem: string;
  /** From vendor-ca.key: unencrypted, in memory only. */
  keyPem?: string;
  /** Or the CA key in a PKCS#11 token (`--ca-key pkcs11:…`): it signs there. */
  signer?: RsaSigner;
}

/**
 * Read vendor-ca.crt and vendor-ca.key from a keys folder, asking for a passphrase if encrypted.
 * With `caKey` (a `pkcs11:` URI) the key is the token's RSA key instead, which must be the key
 * of vendor-ca.crt.
 */
export async function loadVendorCa(keysDir: string, passphrases: PassphraseSource = envOrPromptPassphrase, caKey?: string): Promise<VendorCa> {
  if (caKey !== undefined) return loadTokenCa(keysDir, caKey);
  const crtPath = join(keysDir, 'vendor-ca.crt');
  const keyPath = join(keysDir, 'vendor-ca.key');
  let certPem: string;
  let keyPem: string;
  try {
    certPem = readInputText(crtPath, MAX_PEM_FILE, 'certificate');
    keyPem = readInputText(keyPath, MAX_PEM_FILE, 'key file');
  } catch (e) {
    throw new IdentityError('E_CA_FILE', 'cannot read ' + crtPath + ' and ' + keyPath, e);
  }
  try {
    const passphrase = isEncryptedPem(keyPem) ? await passphrases.get(keyPath, false) : undefined;
    const key = createPrivateKey(passphrase ? { key: keyPem, format: 'pem', passphrase } : { key: keyPem, format: 'pem' });
    return { certPem, keyPem: key.export({ format: 'pem', type: 'pkcs8' }) as string };
  } catch (e) {
    throw new IdentityError('E_CA_FILE', keyPath + ' is not a readable private key (wrong passphrase?)', e);
  }
}

async function loadTokenCa(keysDir: string, caKey: string): Promise<VendorCa> {
  if (!caKey.startsWith('pkcs11:')) throw new IdentityError('E_CA_FILE', '--ca-key takes a pkcs11: URI (a CA key file is vendor-ca.key in --keys)');
  const crtPath = join(keysDir, 'vendor-ca.crt');
  let certPem: string;
  let cert: X509Certificate;
  try {
    certPem = readInputText(crtPath, MAX_PEM_FILE, 'certificate');
    cert = new X509Certificate(certPem);
  } catch (e) {
    throw new IdentityError('E_CA_FILE', 'cannot read the CA certificate ' + crtPath, e);
  }
  const { loadPkcs11RsaKey } = await import('./pkcs11-rsa');
  const key = await loadPkcs11RsaKey(caKey, 2048, true);
  const spki = (pem: string) => createPublicKey(pem).export({ format: 'der', type: 'spki' });
  if (!spki(key.publicKeyPem()).equals(spki(cert.publicKey.export({ format: 'pem', type: 'spki' }) as string))) {
    throw new IdentityError('E_CA_FILE', `the token key ${key.name} is not the key of ${crtPath}`);
  }
  return { certPem, signer: key };
}

export interface EnrollOptions {
  id: string;
  keysDir: string;
  outDir: string;
  admin?: boolean;
  /** Devices only, required: the board the device is (a check-in claiming another is refused). */
  board?: string;
  /** Devices only: the rollout channel (default `stable`). */
  channel?: string;
  days?: number;
  now?: Date;
  passphrases?: PassphraseSource;
  /** The CA key in a PKCS#11 token instead of <keysDir>/vendor-ca.key. */
  caKey?: string;
}

export async function enrollIdentity(o: EnrollOptions): Promise<IdentityInfo & { outDir: string }> {
  if (!IDENTITY_ID.test(o.id)) throw new IdentityError('E_IDENTITY_ARGS', 'bad identity id ' + JSON.stringify(o.id));
  const days = o.days ?? (o.admin ? DEFAULT_ADMIN_DAYS : DEFAULT_DEVICE_DAYS);
  if (!Number.isInteger(days) || days < 1 || days > 36500) throw new IdentityError('E_IDENTITY_ARGS', 'certificate lifetime must be 1–36500 days');
  if (outputFolderState(o.outDir) === 'not-empty') {
    throw new IdentityError('E_IDENTITY_EXISTS', o.outDir + ' already exists and is not empty');
  }
  const bound = boundBoard(o);
  const ca = await loadVendorCa(o.keysDir, o.passphrases, o.caKey);
  const role: CertRole = o.admin ? 'admin' : 'device';
  const issued = issueCertificate({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, caSigner: ca.signer, commonName: o.id, role, days, now: o.now, ...bound });
  const info: IdentityInfo = { id: o.id, role, serial: issued.serial, notAfter: issued.notAfter.toISOString(), ...bound };
  await createDirAtomic(o.outDir, (tmp) => {
    writeFileAtomic(join(tmp, IDENTITY_FILES.cert), issued.certPem);
    writeFileAtomic(join(tmp, IDENTITY_FILES.key), issued.keyPem!, 0o600);
    writeFileAtomic(join(tmp, IDENTITY_FILES.ca), ca.certPem);
    writeFileAtomic(join(tmp, IDENTITY_FILES.info), JSON.stringify(info, null, 2) + '\n');
  });
  return { ...info, outDir: o.outDir };
}

/** The board and channel a device identity is bound to; admins have none. */
function boundBoard(o: EnrollOptions): { board?: string; channel?: string } {
  if (o.admin) {
    if (o.board !== undefined || o.channel !== undefined) throw new IdentityError('E_IDENTITY_BOARD', 'an admin identity has no board or channel; drop --board/--channel');
    return {};
  }
  if (o.board === undefined) throw new IdentityError('E_IDENTITY_BOARD', `device ${o.id} needs --board: a device is enrolled for one board`);
  // The board must be one this SDK knows (boards/ or $SIGNET_BOARDS): E_BOARD_UNKNOWN otherwise.
  loadBoard(o.board);
  const channel = o.channel ?? DEFAULT_DEVICE_CHANNEL;
  if (!CHANNEL_NAME.test(channel)) throw new IdentityError('E_IDENTITY_BOARD', `bad channel ${JSON.stringify(channel)}: lower-case letters, digits and "-", up to 32`);
  return { board: o.board, channel };
}

/** Load an identity folder written by enrollIdentity (for mutual TLS). */
export function loadIdentity(dir: string): Identity {
  const read = (name: string) => {
    try {
      return readInputText(join(dir, name), MAX_PEM_FILE, name);
    } catch (e) {
      throw new IdentityError('E_IDENTITY_FILE', 'cannot read ' + join(dir, name) + (e instanceof FileError ? ': ' + e.message : ''), e);
    }
  };
  let info: IdentityInfo;
  try {
    info = JSON.parse(read(IDENTITY_FILES.info)) as IdentityInfo;
  } catch (e) {
    if (e instanceof IdentityError) throw e;
    throw new IdentityError('E_IDENTITY_FILE', join(dir, IDENTITY_FILES.info) + ' is not JSON', e);
  }
  if (!info || typeof info.id !== 'string' || (info.role !== 'device' && info.role !== 'admin')) {
    throw new IdentityError('E_IDENTITY_FILE', join(dir, IDENTITY_FILES.info) + ' does not describe an identity');
  }
  const id = { ...info, certPem: read(IDENTITY_FILES.cert), keyPem: read(IDENTITY_FILES.key), caPem: read(IDENTITY_FILES.ca) };
  checkIdentityKeys(dir, id);
  return id;
}

/** The certificates parse and the key is the certificate's: TLS would otherwise fail later with an OpenSSL message. */
function checkIdentityKeys(dir: string, id: Identity): void {
  const cert = (name: string, pem: string) => {
    try {
      return new X509Certificate(pem);
    } catch (e) {
      throw new IdentityError('E_IDENTITY_FILE', join(dir, name) + ' is not a PEM certificate', e);
    }
  };
  const leaf = cert(IDENTITY_FILES.cert, id.certPem);
  cert(IDENTITY_FILES.ca, id.caPem);
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: id.keyPem, format: 'pem' });
  } catch (e) {
    throw new IdentityError('E_IDENTITY_KEY', join(dir, IDENTITY_FILES.key) + ' is not a readable unencrypted private key', e);
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new IdentityError('E_IDENTITY_MISMATCH', join(dir, IDENTITY_FILES.key) + ' is not the key of ' + join(dir, IDENTITY_FILES.cert));
  }
}

export interface ServerTls {
  certPem: string;
  keyPem: string;
  caPem: string;
}

/** The update server's TLS certificate, for the given host names and IP addresses. */
export function issueServerTls(ca: VendorCa, hosts: string[], now?: Date, days = 825): ServerTls {
  const { dnsNames: dns, ipAddresses: ips } = parseServerHosts(hosts);
  const issued = issueCertificate({
    caCertPem: ca.certPem, caKeyPem: ca.keyPem, caSigner: ca.signer, commonName: dns[0] ?? ips[0] ?? 'localhost', role: 'server', days, now,
    dnsNames: dns, ipAddresses: ips,
  });
  return { certPem: issued.certPem, keyPem: issued.keyPem!, caPem: ca.certPem };
}
