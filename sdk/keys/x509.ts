/**
 * X.509 through node-forge (the only file in sdk/keys that imports it): the vendor CA that
 * issues device certificates and the update server's TLS certificate.
 */
import forge from 'node-forge';
import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import type { RsaSigner } from '../fit/signer';
import { caSigningKey } from './device-x509';

export interface CertAndKey {
  certPem: string;
  /** Unencrypted PKCS#8 PEM; callers encrypt before writing if a passphrase is set. */
  keyPem: string;
}

/** RSA generation through OpenSSL: node-forge's pure-JS prime search takes seconds. */
function rsaKeyPair(bits: number): { privatePem: string; forgeKey: forge.pki.rsa.PrivateKey; forgePub: forge.pki.rsa.PublicKey } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 65537 });
  const pkcs1 = privateKey.export({ format: 'pem', type: 'pkcs1' }) as string;
  const forgeKey = forge.pki.privateKeyFromPem(pkcs1);
  const forgePub = forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e);
  return { privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, forgeKey, forgePub };
}

function serial(): string {
  // Positive 128-bit serial (high bit clear), as RFC 5280 wants.
  const b = randomBytes(16);
  b[0] &= 0x7f;
  return b.toString('hex');
}

export function createVendorCa(commonName: string, days: number, now = new Date()): CertAndKey {
  const { privatePem, forgeKey, forgePub } = rsaKeyPair(2048);
  return { certPem: vendorCaCert(commonName, days, now, forgePub, forgeKey), keyPem: privatePem };
}

/**
 * The vendor CA certificate for an RSA key held in a token (`signet keys new --role ca --out
 * pkcs11:…`): self-signed by the token through `signer`.
 */
export function createVendorCaFor(publicKeyPem: string, signer: RsaSigner, commonName: string, days: number, now = new Date()): string {
  const pub = forge.pki.publicKeyFromPem(publicKeyPem) as forge.pki.rsa.PublicKey;
  return vendorCaCert(commonName, days, now, pub, caSigningKey({ caSigner: signer }));
}

function vendorCaCert(commonName: string, days: number, now: Date, forgePub: forge.pki.rsa.PublicKey, forgeKey: forge.pki.rsa.PrivateKey): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forgePub;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(now.getTime() - 60_000);
  cert.validity.notAfter = new Date(now.getTime() + days * 86400_000);
  const attrs = [{ name: 'commonName', value: commonName }, { name: 'organizationName', value: 'Signet vendor CA' }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forgeKey, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

export interface CertInfo {
  subject: string;
  issuer: string;
  isCa: boolean;
  notBefore: Date;
  notAfter: Date;
  publicKeyBits: number;
}

export function describeCert(pem: string): CertInfo {
  const cert = forge.pki.certificateFromPem(pem);
  const bc = cert.getExtension('basicConstraints') as { cA?: boolean } | null;
  const cn = (attrs: forge.pki.CertificateField[]) => attrs.map((a) => `${a.shortName}=${a.value}`).join(',');
  return {
    subject: cn(cert.subject.attributes),
    issuer: cn(cert.issuer.attributes),
    isCa: !!bc?.cA,
    notBefore: cert.validity.notBefore,
    notAfter: cert.validity.notAfter,
    publicKeyBits: (cert.publicKey as forge.pki.rsa.PublicKey).n.bitLength(),
  };
}

/** True if `pem` verifies under its own key (a self-signed CA). */
export function verifySelfSigned(pem: string): boolean {
  const cert = forge.pki.certificateFromPem(pem);
  try {
    return cert.verify(cert);
  } catch {
    return false;
  }
}

/** An RSA-2048 key for signing U-Boot FIT images, as unencrypted PKCS#8 PEM. */
export function generateFitKey(): string {
  return rsaKeyPair(2048).privatePem;
}

/** Re-encrypt an unencrypted PKCS#8 PEM with a passphrase (OpenSSL-readable). */
export function encryptPem(pem: string, passphrase: string): string {
  return createPrivateKey(pem).export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase }) as string;
}
