/** Once per test run: make sure the CLI bundle (dist/signet.mjs) matches the sources. */
// @ts-expect-error — a plain .mjs helper without types
import { bundleCli } from '../sdk/cli/bundle.mjs';
import { buildNativeHost, type NativeTarget } from '../bootloader/native/build';
import { listBoards, loadBoard } from '../sdk/board';
import { buildBoardKernel } from '../sdk/kernel/board';
import { buildBoardXen } from '../sdk/xen/build';

export default async function setup(): Promise<void> {
  await bundleCli();
  await Promise.all([buildBoardKernels(), buildNativeHosts()]);
}

/**
 * The boot stage's C host (signet-host) for this machine and both boards' arches, cached in
 * .cache/signet/native: built here, beside the kernel builds, rather than by whichever test
 * files need it first; with two vitest workers, two files would each build the same one.
 */
async function buildNativeHosts(): Promise<void> {
  const targets: NativeTarget[] = ['host', 'arm64', 'armhf'];
  await Promise.all(targets.map((t) => buildNativeHost(t)));
}

/**
 * Boards whose kernel is built from source (kernel.source "debian-source"): built here, once,
 * before any test file runs, so that the first `signet fit` of a run finds it in the cache
 * instead of spending a cold build (minutes on 2 cores) inside one test's timeout. Cached
 * across runs (.cache/signet/kernels), so this is quick after the first.
 */
async function buildBoardKernels(): Promise<void> {
  // All at once: each build is make -j<cores>, but unpacking the source (one xz stream), the
  // configuration, the links and the image compression run on one core; side by side the other
  // build fills the idle core (the source is unpacked once for both, sdk/kernel/source.ts).
  const boards = listBoards().map((id) => loadBoard(id)).filter((b) => b.kernel.source === 'debian-source');
  const started = Date.now();
  await Promise.all(boards.map(async (board) => {
    const k = await buildBoardKernel(board);
    if (!k.cached) process.stdout.write(`global-setup: built the ${board.id} kernel (Linux ${k.release}, ${k.image.length} bytes) in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  }));
  // Xen built from Debian's source (xen.source "debian-source", sdk/xen): once per run, cached (.cache/signet/xen).
  for (const board of listBoards().map((id) => loadBoard(id)).filter((b) => b.xen?.source === 'debian-source')) {
    const t = Date.now();
    const x = await buildBoardXen(board);
    if (!x.cached) process.stdout.write(`global-setup: built Xen ${x.version} for ${board.id} (${x.image.length} bytes) in ${((Date.now() - t) / 1000).toFixed(0)} s\n`);
  }
}
