import { envOrPromptPassphrase, PASSPHRASE_ENV } from '../../keys/passphrase';
import { checkNewKey, newKey } from '../../keys/keynew';
import { JSON_OPTION, need, type Command } from '../command';

export const keysNew: Command = {
  path: ['keys', 'new'],
  summary: 'create one ed25519 key for a role (a new root holder, targets key, or online key) for a key ceremony',
  options: {
    role: { type: 'string', valueName: 'role', description: 'root, targets, snapshot or timestamp' },
    out: { type: 'string', valueName: 'file', description: 'private key file (written 0600); the public key goes beside it as .pub' },
    encrypt: { type: 'boolean', description: `protect the private key with a passphrase (from ${PASSPHRASE_ENV} or a prompt)` },
    ...JSON_OPTION,
  },
  details: ['Existing files are never overwritten. Add the key to the next root with `signet root new --add-key ROLE=FILE.pub`.'],
  async run(ctx) {
    const role = need(ctx, 'role');
    const out = need(ctx, 'out');
    checkNewKey(role, out);
    const passphrase = ctx.values.encrypt ? await envOrPromptPassphrase.get('the new key', true) : undefined;
    const r = newKey(role, out, passphrase);
    if (ctx.json) ctx.out(JSON.stringify(r));
    else ctx.out(`wrote ${r.role} key ${r.keyid} to ${r.privatePath} (public: ${r.publicPath})`);
  },
};
