import { envOrPromptPassphrase, PASSPHRASE_ENV } from '../../keys/passphrase';
import { checkNewKey, newKey, TOKEN_RSA_ROLES, writeNewPublicKey } from '../../keys/keynew';
import { writeFileAtomic } from '../../util/fs-atomic';
import { intOption, JSON_OPTION, need, UsageError, type Command } from '../command';

export const keysNew: Command = {
  path: ['keys', 'new'],
  summary: 'create one key for a role: ed25519 (a new root holder, targets key, or online key) for a key ceremony, or RSA (fit, ca) in a token',
  options: {
    role: { type: 'string', valueName: 'role', description: 'root, targets, snapshot or timestamp; or, in a token only, fit (RSA-2048 FIT signing key) or ca (RSA-2048 vendor CA key)' },
    out: { type: 'string', valueName: 'file|pkcs11:uri', description: 'private key file (written 0600; the public key goes beside it as .pub), or a PKCS#11 URI with object= to make the key inside a token' },
    pub: { type: 'string', valueName: 'file', description: 'with a pkcs11: --out, also write the public key here (for `root new --add-key`; fit: SPKI PEM; ca: required, the self-signed vendor-ca.crt)' },
    name: { type: 'string', valueName: 'text', description: 'ca: the CA certificate\'s common name (default "Signet vendor CA")' },
    days: { type: 'string', valueName: 'n', description: 'ca: the CA certificate\'s lifetime (default 3650)' },
    encrypt: { type: 'boolean', description: `protect the private key with a passphrase (from ${PASSPHRASE_ENV} or a prompt)` },
    ...JSON_OPTION,
  },
  details: ['Existing files and token keys are never overwritten. Add the key to the next root with `signet root new --add-key ROLE=FILE.pub` (or ROLE=pkcs11:…).'],
  async run(ctx) {
    const role = need(ctx, 'role');
    const out = need(ctx, 'out');
    if (out.startsWith('pkcs11:')) {
      if (ctx.values.encrypt) throw new UsageError('--encrypt is for key files; a token protects its keys with its PIN');
      const pub = ctx.values.pub as string | undefined;
      checkNewKey(role, pub ?? '', true);
      if (TOKEN_RSA_ROLES.includes(role)) {
        if (role === 'ca' && pub === undefined) throw new UsageError('--role ca needs --pub FILE: the CA certificate (vendor-ca.crt) the token\'s key self-signs');
        const days = intOption(ctx, 'days', 1, 36500) ?? 3650;
        const { generatePkcs11RsaKey } = await import('../../keys/pkcs11-rsa');
        const key = await generatePkcs11RsaKey(out, 2048);
        let text = key.publicKeyPem();
        if (role === 'ca') {
          const { createVendorCaFor } = await import('../../keys/x509');
          text = createVendorCaFor(text, key, (ctx.values.name as string | undefined) ?? 'Signet vendor CA', days);
        }
        if (pub) writeFileAtomic(pub, text);
        const r = { role, bits: key.bits, uri: out.split('?')[0], publicPath: pub ?? null };
        if (ctx.json) ctx.out(JSON.stringify(r));
        else ctx.out(`made ${role} key (RSA-${key.bits}) in the token as ${r.uri}` + (pub ? ` (${role === 'ca' ? 'CA certificate' : 'public key'}: ${pub})` : ''));
        return;
      }
      const { generatePkcs11Key } = await import('../../keys/pkcs11');
      const signer = await generatePkcs11Key(out);
      if (pub) writeNewPublicKey(pub, signer.publicKey);
      const r = { role, keyid: signer.keyid, uri: out.split('?')[0], publicPath: pub ?? null };
      if (ctx.json) ctx.out(JSON.stringify(r));
      else ctx.out(`made ${role} key ${r.keyid} in the token as ${r.uri}` + (pub ? ` (public: ${pub})` : ''));
      return;
    }
    if (ctx.values.pub !== undefined) throw new UsageError('--pub is for a key made in a token; a key file gets its .pub beside it');
    checkNewKey(role, out);
    const passphrase = ctx.values.encrypt ? await envOrPromptPassphrase.get('the new key', true) : undefined;
    const r = newKey(role, out, passphrase);
    if (ctx.json) ctx.out(JSON.stringify(r));
    else ctx.out(`wrote ${r.role} key ${r.keyid} to ${r.privatePath} (public: ${r.publicPath})`);
  },
};
