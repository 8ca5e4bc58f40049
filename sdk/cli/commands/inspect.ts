import { describeImage, readImageFile } from '../../image/file';
import { JSON_OPTION, onePositional, type Command } from '../command';

function fmtTime(s: number): string {
  return new Date(s * 1000).toISOString().replace('.000Z', 'Z');
}

export const inspect: Command = {
  path: ['inspect'],
  summary: 'show an app image: header, manifest, signatures, payload digests and sizes (no trust decision)',
  args: '<image.simg>',
  options: { ...JSON_OPTION },
  details: ['Use `signet verify` to decide whether an image may run.'],
  async run(ctx) {
    const path = onePositional(ctx, 'image file');
    const d = describeImage(path, readImageFile(path));
    if (ctx.json) {
      ctx.out(JSON.stringify(d, null, 2));
      return;
    }
    const m = d.manifest;
    ctx.out(`${d.file}: Signet app image, format ${d.header.formatVersion}, ${d.totalSize} bytes`);
    ctx.out(`  header     ${d.header.headerSize} B   manifest ${d.header.manifestSize} B   payload ${d.header.payloadSize} B`);
    ctx.out(`  service    ${m.name} ${m.version}`);
    ctx.out(`  board      ${m.board}   engine ${m.engine}`);
    ctx.out(`  security   counter ${m.securityCounter}`);
    ctx.out(`  built      ${fmtTime(m.buildTime)} with Signet SDK ${m.sdkVersion}`);
    ctx.out(`  expires    ${m.expires !== undefined ? fmtTime(m.expires) : 'never'}`);
    ctx.out(`  payloads`);
    for (const p of m.payloads) ctx.out(`    ${p.name.padEnd(20)} ${p.type.padEnd(6)} ${String(p.size).padStart(10)} B  sha256 ${p.sha256}`);
    ctx.out(`  modules    ${m.dependencies.length} in the trusted code base (see \`signet tcb\`)`);
    ctx.out(`  signatures ${d.signatures.length}`);
    for (const s of d.signatures) ctx.out(`    ed25519 key ${s.keyid}`);
  },
};
