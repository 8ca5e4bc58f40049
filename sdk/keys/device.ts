/**
 * Identities issued by the vendor CA: `signet device enroll` (a device's key and certificate,
 * or an admin's with --admin) and the update server's TLS certificate.
 *
 * An identity folder holds `client.crt`, `client.key` (mode 0600), `vendor-ca.crt` (to
 * authenticate the server) and `identity.json`; it is written under a temp name and renamed,
 * so a failed enrolment leaves nothing behind.
 */
import { createPrivateKey } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { createDirAtomic, writeFileAtomic } from '../util/fs-atomic';
import { IdentityError } from './device-errors';
import { issueCertificate, type CertRole } from './device-x509';
import { isEncryptedPem } from './keyfile';
import { envOrPromptPassphrase, type PassphraseSource } from './passphrase';

export const IDENTITY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const DEFAULT_DEVICE_DAYS = 3650;
export const DEFAULT_ADMIN_DAYS = 365;

export const IDENTITY_FILES = { cert: 'client.crt', key: 'client.key', ca: 'vendor-ca.crt', info: 'identity.json' } as const;

export interface IdentityInfo {
  id: string;
  role: 'device' | 'admin';
  serial: string;
  notAfter: string;
}

export interface Identity extends IdentityInfo {
  certPem: string;
  keyPem: string;
  caPem: string;
}

export interface VendorCa {
  certPem: string;
  keyPem: string; // unencrypted, in memory only
}

/** Read vendor-ca.crt and vendor-ca.key from a keys folder, asking for a passphrase if encrypted. */
export async function loadVendorCa(keysDir: string, passphrases: PassphraseSource = envOrPromptPassphrase): Promise<VendorCa> {
  const crtPath = join(keysDir, 'vendor-ca.crt');
  const keyPath = join(keysDir, 'vendor-ca.key');
  let certPem: string;
  let keyPem: string;
  try {
    certPem = readFileSync(crtPath, 'utf8');
    keyPem = readFileSync(keyPath, 'utf8');
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

export interface EnrollOptions {
  id: string;
  keysDir: string;
  outDir: string;
  admin?: boolean;
  days?: number;
  now?: Date;
  passphrases?: PassphraseSource;
}

export async function enrollIdentity(o: EnrollOptions): Promise<IdentityInfo & { outDir: string }> {
  if (!IDENTITY_ID.test(o.id)) throw new IdentityError('E_IDENTITY_ARGS', 'bad identity id ' + JSON.stringify(o.id));
  const days = o.days ?? (o.admin ? DEFAULT_ADMIN_DAYS : DEFAULT_DEVICE_DAYS);
  if (!Number.isInteger(days) || days < 1 || days > 36500) throw new IdentityError('E_IDENTITY_ARGS', 'certificate lifetime must be 1–36500 days');
  if (existsSync(o.outDir) && readdirSync(o.outDir).length > 0) {
    throw new IdentityError('E_IDENTITY_EXISTS', o.outDir + ' already exists and is not empty');
  }
  const ca = await loadVendorCa(o.keysDir, o.passphrases);
  const role: CertRole = o.admin ? 'admin' : 'device';
  const issued = issueCertificate({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, commonName: o.id, role, days, now: o.now });
  const info: IdentityInfo = { id: o.id, role, serial: issued.serial, notAfter: issued.notAfter.toISOString() };
  if (existsSync(o.outDir)) rmdirSync(o.outDir);
  await createDirAtomic(o.outDir, (tmp) => {
    writeFileAtomic(join(tmp, IDENTITY_FILES.cert), issued.certPem);
    writeFileAtomic(join(tmp, IDENTITY_FILES.key), issued.keyPem!, 0o600);
    writeFileAtomic(join(tmp, IDENTITY_FILES.ca), ca.certPem);
    writeFileAtomic(join(tmp, IDENTITY_FILES.info), JSON.stringify(info, null, 2) + '\n');
  });
  return { ...info, outDir: o.outDir };
}

/** Load an identity folder written by enrollIdentity (for mutual TLS). */
export function loadIdentity(dir: string): Identity {
  const read = (name: string) => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch (e) {
      throw new IdentityError('E_IDENTITY_FILE', 'cannot read ' + join(dir, name), e);
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
  return { ...info, certPem: read(IDENTITY_FILES.cert), keyPem: read(IDENTITY_FILES.key), caPem: read(IDENTITY_FILES.ca) };
}

export interface ServerTls {
  certPem: string;
  keyPem: string;
  caPem: string;
}

/** The update server's TLS certificate, for the given host names and IP addresses. */
export function issueServerTls(ca: VendorCa, hosts: string[], now?: Date, days = 825): ServerTls {
  const ips: string[] = [];
  const dns: string[] = [];
  for (const h of hosts) {
    if (/^\d{1,3}(\.\d{1,3}){3}$/.test(h) || h.includes(':')) ips.push(h);
    else if (/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(h)) dns.push(h);
    else throw new IdentityError('E_IDENTITY_ARGS', 'bad host name ' + JSON.stringify(h));
  }
  const issued = issueCertificate({
    caCertPem: ca.certPem, caKeyPem: ca.keyPem, commonName: dns[0] ?? ips[0] ?? 'localhost', role: 'server', days, now,
    dnsNames: dns, ipAddresses: ips,
  });
  return { certPem: issued.certPem, keyPem: issued.keyPem!, caPem: ca.certPem };
}
