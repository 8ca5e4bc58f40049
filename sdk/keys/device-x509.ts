/**
 * Leaf certificates from the vendor CA, through node-forge: device and admin client
 * certificates (mutual TLS to the update server) and the server's TLS certificate.
 *
 * The role is carried in the subject's OU (`device`, `admin`, `server`) and in extended key
 * usage (clientAuth / serverAuth), so a device certificate cannot serve as the server's and
 * the server can tell an admin from a device without a database lookup.
 */
import forge from 'node-forge';
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import type { RsaSigner } from '../fit/signer';
import { IdentityError } from './device-errors';

export type CertRole = 'device' | 'admin' | 'server';

export interface IssueOptions {
  caCertPem: string;
  /** Unencrypted PEM (PKCS#8 or PKCS#1); or, instead, */
  caKeyPem?: string;
  /** the CA's RSA key behind a signer (a PKCS#11 token): it signs the TBSCertificate's SHA-256. */
  caSigner?: RsaSigner;
  commonName: string;
  role: CertRole;
  days: number;
  now?: Date;
  /** SPKI PEM of an existing RSA key; a new RSA-2048 key is made when absent. */
  publicKeyPem?: string;
  /**
   * Device certificates: the board (and channel) the device was enrolled for, carried as
   * further OU values `board:<id>` and `channel:<name>` so the server binds them to the
   * identity without a database lookup (docs/ota-protocol.md §2).
   */
  board?: string;
  channel?: string;
  /** Server certificates: DNS names and IP addresses for subjectAltName. */
  dnsNames?: string[];
  ipAddresses?: string[];
}

export interface IssuedCert {
  certPem: string;
  /** Unencrypted PKCS#8 PEM of the new key; absent when publicKeyPem was given. */
  keyPem?: string;
  serial: string;
  notAfter: Date;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] & 0x7f) | 0x40; // positive (RFC 5280) and no leading zero byte, so every tool prints it alike
  return b.toString('hex');
}

/** A fresh RSA-2048 key pair through OpenSSL (forge's own prime search is slow). */
export function generateRsaKey(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537 });
  return {
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }) as string,
  };
}

export function issueCertificate(o: IssueOptions): IssuedCert {
  const now = o.now ?? new Date();
  const ca = forge.pki.certificateFromPem(o.caCertPem);
  const caKey = caSigningKey(o);
  let keyPem: string | undefined;
  let publicPem = o.publicKeyPem;
  if (!publicPem) {
    const k = generateRsaKey();
    keyPem = k.privatePem;
    publicPem = k.publicPem;
  }
  const pub = forge.pki.publicKeyFromPem(createPublicKey(publicPem).export({ format: 'pem', type: 'spki' }) as string);
  const cert = forge.pki.createCertificate();
  cert.publicKey = pub;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(now.getTime() - 60_000);
  cert.validity.notAfter = new Date(now.getTime() + o.days * 86400_000);
  const bound: object[] = [];
  if (o.board !== undefined) bound.push({ shortName: 'OU', value: 'board:' + o.board });
  if (o.channel !== undefined) bound.push({ shortName: 'OU', value: 'channel:' + o.channel });
  cert.setSubject([
    { name: 'commonName', value: o.commonName },
    { shortName: 'OU', value: o.role },
    ...bound,
    { name: 'organizationName', value: 'Signet vendor' },
  ]);
  cert.setIssuer(ca.subject.attributes);
  const ext: object[] = [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    o.role === 'server' ? { name: 'extKeyUsage', serverAuth: true } : { name: 'extKeyUsage', clientAuth: true },
    { name: 'subjectKeyIdentifier' },
  ];
  if (o.role === 'server') {
    const alt: object[] = [];
    for (const d of o.dnsNames ?? []) alt.push({ type: 2, value: d });
    for (const ip of o.ipAddresses ?? []) alt.push({ type: 7, ip });
    ext.push({ name: 'subjectAltName', altNames: alt });
  }
  cert.setExtensions(ext);
  cert.sign(caKey, forge.md.sha256.create());
  // Fail closed: a CA key that is not the certificate's (a wrong token object) issues nothing.
  if (!ca.verify(cert)) throw new IdentityError('E_CA_FILE', 'the CA key is not the key of the CA certificate');
  return { certPem: forge.pki.certificateToPem(cert), keyPem, serial: cert.serialNumber, notAfter: cert.validity.notAfter };
}

/**
 * What forge's `cert.sign` calls: `key.sign(md)` → the signature as a binary string. A token's
 * key is given the SHA-256 forge computed over the DER TBSCertificate (sha256WithRSAEncryption).
 */
export function caSigningKey(o: { caKeyPem?: string; caSigner?: RsaSigner }): forge.pki.rsa.PrivateKey {
  if (o.caSigner) {
    const s = o.caSigner;
    const key = { sign: (md: forge.md.MessageDigest) => Buffer.from(s.sign(Buffer.from(md.digest().getBytes(), 'binary'))).toString('binary') };
    return key as unknown as forge.pki.rsa.PrivateKey;
  }
  if (o.caKeyPem === undefined) throw new IdentityError('E_CA_FILE', 'no CA key to sign with');
  return forge.pki.privateKeyFromPem(createPrivateKey(o.caKeyPem).export({ format: 'pem', type: 'pkcs1' }) as string);
}

/** Subject CN and OU of a certificate, for listing identity folders. */
export function certSubject(pem: string): { commonName: string; role: string; serial: string; notAfter: Date; issuer: string } {
  const cert = forge.pki.certificateFromPem(pem);
  const get = (attrs: forge.pki.CertificateField[], short: string) => String(attrs.find((a) => a.shortName === short)?.value ?? '');
  return {
    commonName: get(cert.subject.attributes, 'CN'),
    role: get(cert.subject.attributes, 'OU'),
    serial: cert.serialNumber,
    notAfter: cert.validity.notAfter,
    issuer: get(cert.issuer.attributes, 'CN'),
  };
}
