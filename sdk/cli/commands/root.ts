import { readInputText } from '../../util/files';
import { loadSignerSpec } from '../../keys/signer-spec';
import { parseStrictJson } from '../../util/strict-json';
import { adminClientFor } from '../../ota/repository-http';
import { mergeRootFile, pushRootFile, signRootFile, verifyRootFile, writeNextRoot } from '../../ota/repository-ceremony';
import { RepositoryError } from '../../ota/repository-errors';
import type { RootEdits } from '../../ota/repository-root';
import { publicKeyObject } from '../../ota/metadata';
import { intOption, JSON_OPTION, need, onePositional, UsageError, type Command, type RunContext } from '../command';
import { ADMIN_OPTIONS } from './publish';

function pairs(ctx: RunContext, name: string): [string, string][] {
  const vs = (ctx.values[name] as string[] | undefined) ?? [];
  return vs.map((v) => {
    const i = v.indexOf('=');
    if (i < 1 || i === v.length - 1) throw new UsageError(`--${name} takes ROLE=VALUE, got "${v.slice(0, 80)}"`);
    return [v.slice(0, i), v.slice(i + 1)];
  });
}

function readPublicKey(path: string): unknown {
  const text = readInputText(path, 64 * 1024, 'public key file');
  try {
    return parseStrictJson(text);
  } catch (e) {
    throw new RepositoryError('E_ROOT_EDIT', `${path} is not a public key file (.pub from \`signet keys new\`)`, e);
  }
}

const short = (id: string) => id.slice(0, 16);

export const rootNew: Command = {
  path: ['root', 'new'],
  summary: 'write the next root version, unsigned, with keys added, removed or thresholds changed',
  options: {
    from: { type: 'string', valueName: 'file', description: 'the root in force (root.json)' },
    'add-key': { type: 'string', multiple: true, valueName: 'role=file.pub', description: 'add a key to a role: a .pub file or a pkcs11: URI (repeatable)' },
    'remove-key': { type: 'string', multiple: true, valueName: 'role=keyid', description: 'remove a key from a role, by key id or a unique prefix of 8+ digits (repeatable)' },
    threshold: { type: 'string', multiple: true, valueName: 'role=n', description: 'signatures the role needs (repeatable)' },
    'expires-days': { type: 'string', valueName: 'days', description: 'lifetime of the new root (default 365)' },
    out: { type: 'string', valueName: 'file', description: 'where to write it (must not exist)' },
    ...JSON_OPTION,
  },
  details: ['Then each root key holder runs `signet root sign FILE --key KEY` on their own machine.'],
  async run(ctx) {
    const from = need(ctx, 'from');
    const out = need(ctx, 'out');
    const edits: RootEdits = {
      addKeys: await Promise.all(pairs(ctx, 'add-key').map(async ([role, file]) => ({
        role,
        // A key in a token is added by its URI: its public half is read from the token.
        key: file.startsWith('pkcs11:') ? publicKeyObject((await loadSignerSpec(file)).publicKey) : readPublicKey(file),
      }))),
      removeKeys: pairs(ctx, 'remove-key').map(([role, keyid]) => ({ role, keyid })),
      thresholds: pairs(ctx, 'threshold').map(([role, n]) => {
        if (!/^\d{1,2}$/.test(n)) throw new UsageError(`--threshold ${role}= needs a number from 1 to 99, got "${n.slice(0, 20)}"`);
        return { role, threshold: Number(n) };
      }),
      expiresDays: intOption(ctx, 'expires-days', 1, 3650),
    };
    const next = writeNextRoot(from, edits, out);
    if (ctx.json) {
      ctx.out(JSON.stringify({ out, version: next.version, expires: next.expires, roles: next.roles }));
      return;
    }
    ctx.out(`wrote root version ${next.version} (unsigned, expires ${next.expires}) to ${out}`);
    for (const role of ['root', 'targets', 'snapshot', 'timestamp'] as const) {
      const r = next.roles[role];
      ctx.out(`  ${role.padEnd(9)} ${r.threshold}-of-${r.keyids.length}  ${r.keyids.map((k) => k.slice(0, 12)).join(' ')}`);
    }
  },
};

export const rootSign: Command = {
  path: ['root', 'sign'],
  summary: 'add your signature to a root file (each holder on their own machine), or merge another holder\'s copy',
  args: '<root.vN.json>',
  options: {
    key: { type: 'string', valueName: 'file|pkcs11:uri', description: 'your root private key, a file or a PKCS#11 URI' },
    trusted: { type: 'string', valueName: 'file', description: 'the root in force: needed when your key is a root key only there' },
    merge: { type: 'string', valueName: 'file', description: 'instead of signing, add the signatures of another copy of the same root' },
    ...JSON_OPTION,
  },
  details: ['A copy whose signed content differs is refused, not merged; so is a signature over other bytes.'],
  async run(ctx) {
    const file = onePositional(ctx, 'root file');
    const trusted = ctx.values.trusted as string | undefined;
    if (ctx.values.merge !== undefined) {
      if (ctx.values.key !== undefined) throw new UsageError('give --key or --merge, not both');
      const r = mergeRootFile(file, need(ctx, 'merge'), trusted);
      if (ctx.json) ctx.out(JSON.stringify({ file, added: r.added, signatures: r.signatures }));
      else ctx.out(`${file}: added ${r.added.length} signature(s) (${r.added.map(short).join(', ') || 'none new'}); ${r.signatures} in all`);
      return;
    }
    const signer = await loadSignerSpec(need(ctx, 'key'));
    const r = await signRootFile(file, signer, trusted);
    if (ctx.json) ctx.out(JSON.stringify({ file, version: r.version, keyid: r.keyid, added: r.added, signatures: r.signatures }));
    else ctx.out(r.added ? `signed root version ${r.version} in ${file} with key ${short(r.keyid)}; ${r.signatures} signature(s) in all` : `${file} is already signed by key ${short(r.keyid)}; unchanged`);
  },
};

export const rootVerify: Command = {
  path: ['root', 'verify'],
  summary: 'check a root file as devices will: signed by a threshold of the old root\'s keys AND of its own; say who signed and who is missing',
  args: '<root.vN.json>',
  options: {
    trusted: { type: 'string', valueName: 'file', description: 'the root in force (root.json)' },
    ...JSON_OPTION,
  },
  async run(ctx) {
    const file = onePositional(ctx, 'root file');
    const r = verifyRootFile(file, need(ctx, 'trusted'));
    if (ctx.json) ctx.out(JSON.stringify(r));
    else {
      ctx.out(`root version ${r.version}, following version ${r.trustedVersion}`);
      for (const s of [r.old, r.new]) {
        const need = Math.max(0, s.threshold - s.signed.length);
        ctx.out(`  ${s.which} root (v${s.version}) needs ${s.threshold} of ${s.signed.length + s.missing.length}: signed by ${s.signed.map(short).join(', ') || 'nobody'}` +
          (need ? `; missing ${need} more from ${s.missing.map(short).join(', ')}` : '; enough'));
      }
      if (r.ignored.length) ctx.out(`  ignored (not a root key of either): ${r.ignored.map(short).join(', ')}`);
    }
    if (!r.ok) {
      throw new RepositoryError('E_ROOT_UNSIGNED', `root version ${r.version} has ${r.old.signed.length} of ${r.old.threshold} old and ${r.new.signed.length} of ${r.new.threshold} new root signatures`);
    }
    if (!ctx.json) ctx.out('  ok: devices trusting version ' + r.trustedVersion + ' will accept it');
  },
};

export const rootPush: Command = {
  path: ['root', 'push'],
  summary: 'put a fully signed root on the update server, which serves it as the next N.root.json',
  args: '<root.vN.json>',
  options: {
    ...ADMIN_OPTIONS,
    keys: { type: 'string', valueName: 'folder', description: 'also make it this keys folder\'s root.json (the old one is kept as N.root.json)' },
    ...JSON_OPTION,
  },
  details: ['Checked first against the server\'s current root as a device checks it; nothing is sent if it would be refused.'],
  async run(ctx) {
    const file = onePositional(ctx, 'root file');
    const r = await pushRootFile(file, adminClientFor(ctx.values.server as string | undefined, ctx.values.admin as string | undefined), ctx.values.keys as string | undefined);
    if (ctx.json) ctx.out(JSON.stringify(r));
    else ctx.out(`the server now serves root version ${r.version}` + (r.kept ? ` (kept the previous root as ${r.kept})` : ''));
  },
};
