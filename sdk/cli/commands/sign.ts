import { addSignature } from '../../image/create';
import { readImageFile } from '../../image/file';
import { loadSignerSpec } from '../../keys/signer-spec';
import { writeFileAtomic } from '../../util/fs-atomic';
import { JSON_OPTION, need, onePositional, type Command } from '../command';

export const sign: Command = {
  path: ['sign'],
  summary: 'add one targets signature to an app image (for k-of-n releases)',
  args: '<image.simg>',
  options: {
    key: { type: 'string', valueName: 'file|pkcs11:uri', description: 'targets private key: a file (e.g. keys/targets-2.key) or a key in a PKCS#11 token' },
    out: { type: 'string', valueName: 'file', description: 'write here instead of updating the image in place' },
    ...JSON_OPTION,
  },
  async run(ctx) {
    const path = onePositional(ctx, 'image file');
    const signer = await loadSignerSpec(need(ctx, 'key'));
    const signed = await addSignature(readImageFile(path), signer);
    const out = (ctx.values.out as string | undefined) ?? path;
    writeFileAtomic(out, signed);
    if (ctx.json) ctx.out(JSON.stringify({ image: out, keyid: signer.keyid }));
    else ctx.out(`signed ${out} with key ${signer.keyid.slice(0, 16)}`);
  },
};
