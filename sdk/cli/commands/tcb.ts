import { buildTcbReport, diffTcb, formatTcbText, renderTcbHtml } from '../../build/tcb';
import { describeImage, readImageFile } from '../../image/file';
import { writeFileAtomic } from '../../util/fs-atomic';
import { JSON_OPTION, onePositional, type Command } from '../command';

function reportOf(path: string) {
  const d = describeImage(path, readImageFile(path));
  const app = d.manifest.payloads.find((p) => p.type === 'app');
  return { d, report: buildTcbReport(d.manifest.dependencies, { payloadBytes: app?.size }) };
}

export const tcb: Command = {
  path: ['tcb'],
  summary: 'trusted-code-base report: bytes per module (app, SDK, third-party), and what changed vs an older image',
  args: '<image.simg>',
  options: {
    vs: { type: 'string', valueName: 'older.simg', description: 'compare with an older image: added, removed, grew, shrank' },
    html: { type: 'string', valueName: 'file', description: 'also write an HTML page with a treemap' },
    ...JSON_OPTION,
  },
  async run(ctx) {
    const path = onePositional(ctx, 'image file');
    const { report } = reportOf(path);
    const diff = ctx.values.vs ? diffTcb(reportOf(ctx.values.vs as string).report, report) : undefined;
    if (ctx.values.html !== undefined) writeFileAtomic(ctx.values.html as string, renderTcbHtml(report, diff));
    if (ctx.json) ctx.out(JSON.stringify({ report, diff }, null, 2));
    else ctx.out(formatTcbText(report, diff));
  },
};
