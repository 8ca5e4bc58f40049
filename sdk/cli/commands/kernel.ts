import { loadBoard } from '../../board';
import { buildBoardKernel } from '../../kernel/board';
import { buildBoardXen } from '../../xen/build';
import { JSON_OPTION, need, type Command } from '../command';

export const kernelBuild: Command = {
  path: ['kernel', 'build'],
  summary: "build the board's minimal kernel from Debian's linux-source with boards/<id>/kernel.config (cached by its inputs)",
  options: {
    board: { type: 'string', valueName: 'id', description: 'the board (see `signet boards`); its kernel.source must be "debian-source"' },
    ...JSON_OPTION,
  },
  details: [
    'Starts from tinyconfig and adds the board fragment; an option the fragment sets that Kconfig does not keep fails (E_KERNEL_CONFIG).',
    'Reproducible, cached under the project cache (kernels/<sha256 of the inputs>); `signet fit`, `disk` and `run` use it.',
    'Progress goes to stderr on a terminal only.',
  ],
  async run(ctx) {
    const board = loadBoard(need(ctx, 'board'));
    const started = Date.now();
    const k = await buildBoardKernel(board);
    const seconds = (Date.now() - started) / 1000;
    if (ctx.json) {
      ctx.out(JSON.stringify({ board: board.id, arch: k.arch, release: k.release, image: k.imageName, bytes: k.image.length, configSha256: k.configSha256,
        optionsSet: k.optionsSet, fragmentOptions: k.fragmentOptions, sourcePackage: k.sourcePackage, sourceVersion: k.sourceVersion,
        sourceDateEpoch: k.sourceDateEpoch, compiler: k.compiler, key: k.key, dir: k.dir, cached: k.cached, seconds }, null, 2));
      return;
    }
    ctx.out(`${k.cached ? 'cached' : 'built'} Linux ${k.release} ${k.imageName} for ${board.id} from ${k.sourcePackage} ${k.sourceVersion}: ${(k.image.length / 1024).toFixed(0)} KiB, ${k.optionsSet} options set (${k.fragmentOptions} from the fragment), ${seconds.toFixed(1)} s`);
    ctx.out(`  config sha256 ${k.configSha256}`);
    ctx.out(`  ${k.dir}`);
  },
};

export const xenBuild: Command = {
  path: ['xen', 'build'],
  summary: "build the board's Xen hypervisor from Debian's pinned xen source with boards/<id>/xen.config (cached by its inputs)",
  options: {
    board: { type: 'string', valueName: 'id', description: 'the board (see `signet boards`); its xen.source must be "debian-source"' },
    ...JSON_OPTION,
  },
  details: [
    "Downloads the pinned source package once (sha256 checked: E_XEN_SOURCE), applies Debian's patches, starts from Debian's hypervisor config and adds the fragment; an option it sets that Kconfig does not keep fails (E_XEN_CONFIG).",
    'Reproducible, cached under the project cache (xen/<sha256 of the inputs>); `signet run` and the tests use it.',
  ],
  async run(ctx) {
    const board = loadBoard(need(ctx, 'board'));
    const started = Date.now();
    const x = await buildBoardXen(board);
    const seconds = (Date.now() - started) / 1000;
    if (ctx.json) {
      ctx.out(JSON.stringify({ board: board.id, version: x.version, bytes: x.image.length, sourceDateEpoch: x.sourceDateEpoch, compiler: x.compiler, key: x.key, dir: x.dir, cached: x.cached, seconds }, null, 2));
      return;
    }
    ctx.out(`${x.cached ? 'cached' : 'built'} Xen ${x.version} for ${board.id}: ${x.image.length} bytes, ${seconds.toFixed(1)} s`);
    ctx.out(`  ${x.dir}`);
  },
};
