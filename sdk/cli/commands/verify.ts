import { verifyImageFile } from '../../image/file';
import { intOption, JSON_OPTION, need, onePositional, type Command } from '../command';

export const verify: Command = {
  path: ['verify'],
  summary: 'decide whether an app image may run on a board: signatures, threshold, board, expiry, security counter, digests',
  args: '<image.simg>',
  options: {
    root: { type: 'string', valueName: 'root.json', description: 'trusted root metadata' },
    board: { type: 'string', valueName: 'id', description: 'the board the image must be built for' },
    'min-security-counter': { type: 'string', valueName: 'N', description: 'refuse images with a lower security counter' },
    ...JSON_OPTION,
  },
  details: ['Exit status 0 only when the image verifies.'],
  async run(ctx) {
    const path = onePositional(ctx, 'image file');
    const v = verifyImageFile(path, {
      rootPath: need(ctx, 'root'),
      board: need(ctx, 'board'),
      minSecurityCounter: intOption(ctx, 'min-security-counter', 0, 0xffffffff),
    });
    const valid = v.signatures.filter((s) => s.status === 'valid').length;
    if (ctx.json) {
      ctx.out(JSON.stringify({ ok: true, file: path, board: v.manifest.board, name: v.manifest.name, version: v.manifest.version,
        securityCounter: v.manifest.securityCounter, signatures: v.signatures }, null, 2));
      return;
    }
    ctx.out(`OK ${path}: ${v.manifest.name} ${v.manifest.version} for ${v.manifest.board}, security counter ${v.manifest.securityCounter}, ${valid} valid signature(s)`);
  },
};
