import { envOrPromptPassphrase, PASSPHRASE_ENV } from '../../keys/passphrase';
import { checkNewKey, newKey, writeNewPublicKey } from '../../keys/keynew';
import { JSON_OPTION, need, UsageError, type Command } from '../command';

export const keysNew: Command = {
  path: ['keys', 'new'],
  summary: 'create one ed25519 key for a role (a new root holder, targets key, or online key) for a key ceremony',
  options: {
    role: { type: 'string', valueName: 'role', description: 'root, targets, snapshot or timestamp' },
    out: { type: 'string', valueName: 'file|pkcs11:uri', description: 'private key file (written 0600; the public key goes beside it as .pub), or a PKCS#11 URI with object= to make the key inside a token' },
    pub: { type: 'string', valueName: 'file', description: 'with a pkcs11: --out, also write the public key here (for `root new --add-key`)' },
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
      checkNewKey(role, pub ?? '');
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
