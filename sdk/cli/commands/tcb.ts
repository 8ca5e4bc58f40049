import { formatBootTcbText, diffBootTcb } from '../../build/tcb-boot';
import { TcbError } from '../../build/tcb-errors';
import { buildTcbReport, diffTcb, formatTcbText, renderTcbHtml } from '../../build/tcb';
import { loadBootTcb, readTcbInput } from '../../disk/boot-tcb-file';
import { describeImage, readImageFile } from '../../image/file';
import { MAX_KEY_DTB_FILE, readInputFile } from '../../util/files';
import { writeFileAtomic } from '../../util/fs-atomic';
import { JSON_OPTION, onePositional, UsageError, type Command, type RunContext } from '../command';

function reportOf(path: string) {
  const d = describeImage(path, readImageFile(path));
  const app = d.manifest.payloads.find((p) => p.type === 'app');
  return { d, report: buildTcbReport(d.manifest.dependencies, { payloadBytes: app?.size }) };
}

function appImage(ctx: RunContext, path: string): void {
  const vs = ctx.values.vs as string | undefined;
  if (vs !== undefined && readTcbInput(vs).kind !== 'simg') throw new TcbError('E_TCB_VS_KIND', `${path} is an app image and ${vs} is not`);
  if (ctx.values['key-dtb'] !== undefined) throw new UsageError('--key-dtb checks a boot image; an app image is checked with `signet verify`');
  const { report } = reportOf(path);
  const diff = vs ? diffTcb(reportOf(vs).report, report) : undefined;
  if (ctx.values.html !== undefined) writeFileAtomic(ctx.values.html as string, renderTcbHtml(report, diff));
  if (ctx.json) ctx.out(JSON.stringify({ kind: 'app', report, diff }, null, 2));
  else ctx.out(formatTcbText(report, diff));
}

function bootImage(ctx: RunContext, path: string): void {
  if (ctx.values.html !== undefined) throw new UsageError('--html draws an app image\'s modules; a boot image has a text and --json report');
  const keyPath = ctx.values['key-dtb'] as string | undefined;
  const keyDtb = keyPath === undefined ? undefined : readInputFile(keyPath, MAX_KEY_DTB_FILE, 'U-Boot key DTB');
  const vs = ctx.values.vs as string | undefined;
  const older = vs === undefined ? undefined : loadBootTcb(vs, keyDtb);
  const now = loadBootTcb(path, keyDtb);
  const diff = older ? diffBootTcb(older.record, now.record) : undefined;
  if (ctx.json) {
    ctx.out(JSON.stringify({ kind: 'boot', input: now.kind, verified: now.verified, report: now.record, diff }, null, 2));
    return;
  }
  ctx.out(formatBootTcbText(now.record, diff).trimEnd());
  ctx.out(now.verified ? `record signed: the FIT's configuration signature verified with ${keyPath}` : 'record not checked: pass --key-dtb FILE (U-Boot\'s public-key DTB) to verify the signature that covers it');
}

export const tcb: Command = {
  path: ['tcb'],
  summary: 'trusted-code-base report: an app image by module, a boot image (or disk) by kernel, native library and initramfs part; what changed vs an older one',
  args: '<image.simg | boot.itb | disk.img>',
  options: {
    vs: { type: 'string', valueName: 'older', description: 'compare with an older image of the same kind: modules (app); kernel options, library and part sizes (boot)' },
    html: { type: 'string', valueName: 'file', description: 'also write an HTML page with a treemap (app images)' },
    'key-dtb': { type: 'string', valueName: 'file', description: 'boot images: verify the FIT signature (which covers the TCB record) with this U-Boot key DTB first' },
    ...JSON_OPTION,
  },
  details: [
    'A boot image carries its TCB record in the signed FIT (root property signet,tcb): kernel version, source,',
    'config hash and options, /init by library (from its link map), initramfs parts. Boot images built before',
    'the record existed have none: rebuild them with `signet fit` or `signet disk`.',
  ],
  async run(ctx) {
    const path = onePositional(ctx, 'image file');
    if (readTcbInput(path).kind === 'simg') appImage(ctx, path);
    else bootImage(ctx, path);
  },
};
