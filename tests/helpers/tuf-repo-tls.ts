/**
 * Certificates for mutual-TLS tests of the OTA fetcher: a CA, a server certificate for
 * 127.0.0.1, client certificates by CN. node-forge for X.509, OpenSSL (node:crypto) for RSA keys.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface Pem {
  cert: string;
  key: string;
}

function rsa(): { key: string; forgeKey: forge.pki.rsa.PrivateKey; pub: forge.pki.rsa.PublicKey } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const forgeKey = forge.pki.privateKeyFromPem(privateKey.export({ format: 'pem', type: 'pkcs1' }) as string);
  return { key: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, forgeKey, pub: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e) };
}

function cert(subjectCn: string, pub: forge.pki.rsa.PublicKey, issuer: { cn: string; key: forge.pki.rsa.PrivateKey }, ext: object[]): string {
  const c = forge.pki.createCertificate();
  c.publicKey = pub;
  const serial = randomBytes(16);
  serial[0] &= 0x7f;
  c.serialNumber = serial.toString('hex');
  c.validity.notBefore = new Date(Date.now() - 60_000);
  c.validity.notAfter = new Date(Date.now() + 86_400_000);
  c.setSubject([{ name: 'commonName', value: subjectCn }]);
  c.setIssuer([{ name: 'commonName', value: issuer.cn }]);
  c.setExtensions(ext);
  c.sign(issuer.key, forge.md.sha256.create());
  return forge.pki.certificateToPem(c);
}

export class TestCa {
  readonly cert: string;
  private readonly key: forge.pki.rsa.PrivateKey;
  private readonly cn: string;

  constructor(cn = 'Signet test CA') {
    const k = rsa();
    this.cn = cn;
    this.key = k.forgeKey;
    this.cert = cert(cn, k.pub, { cn, key: k.forgeKey }, [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ]);
  }

  server(): Pem {
    const k = rsa();
    return {
      key: k.key,
      cert: cert('127.0.0.1', k.pub, { cn: this.cn, key: this.key }, [
        { name: 'basicConstraints', cA: false },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }] },
      ]),
    };
  }

  client(cn: string): Pem {
    const k = rsa();
    return { key: k.key, cert: cert(cn, k.pub, { cn: this.cn, key: this.key }, [{ name: 'basicConstraints', cA: false }, { name: 'extKeyUsage', clientAuth: true }]) };
  }
}
