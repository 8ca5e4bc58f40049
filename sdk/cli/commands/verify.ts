import { verifyImageFile } from '../../image/file';
import { intOption, JSON_OPTION, need, onePositional, UsageError, type Command, type RunContext } from '../command';

/** --now: unix seconds, or `none` for a device without a trustworthy clock; default this machine's clock. */
function nowOption(ctx: RunContext): number | null | undefined {
  const v = ctx.values.now;
  if (v === undefined) return undefined;
  if (v === 'none') return null;
  if (typeof v !== 'string' || !/^\d{1,12}$/.test(v)) throw new UsageError(`--now must be unix seconds or "none", got "${String(v)}"`);
  return Number(v);
}

/** --floor and --min-security-counter are one option under two names. */
function floorOption(ctx: RunContext): number | undefined {
  const a = intOption(ctx, 'floor', 0, 0xffffffff);
  const b = intOption(ctx, 'min-security-counter', 0, 0xffffffff);
  if (a !== undefined && b !== undefined && a !== b) throw new UsageError('--floor and --min-security-counter disagree; give one');
  return a ?? b;
}

export const verify: Command = {
  path: ['verify'],
  summary: 'decide whether an app image may run on a board, as its boot stage would: slot size, root, signatures, threshold, board, expiry, security counter, digests',
  args: '<image.simg>',
  options: {
    root: { type: 'string', valueName: 'root.json', description: 'trusted root metadata' },
    board: { type: 'string', valueName: 'id', description: 'the board the image must be built for' },
    floor: { type: 'string', valueName: 'N', description: "the device's security counter floor: refuse images with a lower counter (default 0)" },
    'min-security-counter': { type: 'string', valueName: 'N', description: 'same as --floor' },
    now: { type: 'string', valueName: 'unix-seconds|none', description: "judge expiry at this time (default: this machine's clock); none = a device without a clock" },
    ...JSON_OPTION,
  },
  details: [
    'Makes the boot stage\'s decision (docs/image-format.md §5): structure, the board\'s slot size,',
    'the root, targets signatures (distinct keys), manifest, board, expiry, security counter, digests.',
    'It cannot know the device\'s own state: give its floor with --floor and its clock with --now;',
    'a device that rotated to a newer root trusts that root, not the one given with --root.',
    'Exit status 0 only when the image verifies.',
  ],
  async run(ctx) {
    const path = onePositional(ctx, 'image file');
    const v = verifyImageFile(path, {
      rootPath: need(ctx, 'root'),
      board: need(ctx, 'board'),
      minSecurityCounter: floorOption(ctx),
      now: nowOption(ctx),
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
