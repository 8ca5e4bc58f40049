/**
 * A board's minimal kernel, built from Debian's source (sdk/kernel/source.ts) with the board's
 * cross compiler:
 *
 *   1. config: Kconfig's `allnoconfig` with KCONFIG_ALLCONFIG = tinyconfig's fragments
 *      (kernel/configs/tiny-base.config, tiny.config, the arch's tiny.config) merged with
 *      boards/<id>/kernel.config, the board's last; every option the board's fragment sets must
 *      keep its value (config.ts, E_KERNEL_CONFIG), checked before anything is compiled;
 *   2. `make -j<nproc> Image` (arm64) or `zImage` (armhf), no modules;
 *   3. the image, its .config and modules.builtin renamed into cacheDir()/kernels/<key>.
 *
 * Reproducible: the timestamp, user, host and build number the kernel records are fixed
 * (KBUILD_BUILD_*, SOURCE_DATE_EPOCH = the source package's changelog date), and the source
 * and build folders are mapped away in every compiled path (-ffile-prefix-map), so the same
 * source package, fragment and compiler give the same bytes wherever the cache is.
 *
 * The key is the sha256 of every input: the recipe version below, the package and its dpkg
 * version, the arch, the fragment's bytes and the compilers' versions. A finished entry is
 * only ever renamed into place whole; two processes building the same key both finish and
 * the second keeps the first's entry (the bytes are the same).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Arch } from '../board/schema';
import { lockBuild, spawnBuild } from '../util/build-lock';
import { trackTemp } from '../util/fs-atomic';
import { cacheDir } from '../util/paths';
import { checkFinalConfig, configSha256, countOptionsSet, kconfigSymbols, mergeFragments, parseFragment } from './config';
import { KernelError } from './errors';
import { kernelSource, run, type KernelSource } from './source';

/** Bump when anything below changes what a build produces: every cached kernel is rebuilt. */
const RECIPE = 'signet-kernel-1';

interface ArchRecipe {
  /** The kernel's ARCH= / SRCARCH. */
  karch: 'arm64' | 'arm';
  cross: string;
  target: 'Image' | 'zImage';
  image: string;
}

export const KERNEL_ARCH: Record<Arch, ArchRecipe> = {
  arm64: { karch: 'arm64', cross: 'aarch64-linux-gnu-', target: 'Image', image: 'arch/arm64/boot/Image' },
  armhf: { karch: 'arm', cross: 'arm-linux-gnueabihf-', target: 'zImage', image: 'arch/arm/boot/zImage' },
};

export interface KernelBuildInput {
  /** Names the build in messages and progress. */
  boardId: string;
  arch: Arch;
  /** The pinned source version: Debian's linux-source-<version>. */
  version: string;
  /** boards/<id>/kernel.config: its path (for messages) and text. */
  fragmentPath: string;
  fragment: string;
  /** Default cacheDir(). */
  cache?: string;
  /** Show progress on stderr. Default: when stderr is a terminal. */
  progress?: boolean;
}

export interface KernelBuild {
  /** `make kernelrelease`, e.g. 6.1.192. */
  release: string;
  arch: Arch;
  /** The image as the arch boots it: arm64 Image (uncompressed), armhf zImage. */
  image: Uint8Array;
  imageName: 'Image' | 'zImage';
  /** The final .config. */
  config: string;
  configSha256: string;
  /** CONFIG_ options set (not n) in the final .config. */
  optionsSet: number;
  /** Options the board's fragment sets (each checked). */
  fragmentOptions: number;
  sourcePackage: string;
  sourceVersion: string;
  sourceDateEpoch: number;
  /** First line of `<cross>gcc --version`. */
  compiler: string;
  key: string;
  /** The cache entry: Image|zImage, config, build.json, modules/ (modules.builtin, an empty kernel/). */
  dir: string;
  modulesDir: string;
  /** True when the entry was already in the cache. */
  cached: boolean;
}

/** build.json in a cache entry: the build's description, without the bytes and paths. */
type EntryMeta = { recipe: string } & Pick<
  KernelBuild,
  'release' | 'arch' | 'imageName' | 'configSha256' | 'optionsSet' | 'fragmentOptions' | 'sourcePackage' | 'sourceVersion' | 'sourceDateEpoch' | 'compiler'
>;

const firstLine = (s: string) => s.trim().split('\n')[0]!.trim();

async function toolVersion(tool: string): Promise<string> {
  const r = await run(tool, ['--version']);
  if (r.code !== 0) {
    throw new KernelError('E_KERNEL_TOOLCHAIN', `${tool} is not installed (needed to build the kernel)`, 'run .ci/setup, or apt-get install gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf make flex bison bc');
  }
  return firstLine(r.stdout || r.stderr);
}

/** A build's environment: only what kbuild needs, with the reproducibility settings. */
function buildEnv(src: KernelSource): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'TMPDIR'];
  const env: NodeJS.ProcessEnv = {};
  for (const k of keep) if (process.env[k] !== undefined) env[k] = process.env[k];
  return {
    ...env,
    LC_ALL: 'C',
    TZ: 'UTC',
    SOURCE_DATE_EPOCH: String(src.sourceDateEpoch),
    KBUILD_BUILD_TIMESTAMP: new Date(src.sourceDateEpoch * 1000).toUTCString(),
    KBUILD_BUILD_USER: 'signet',
    KBUILD_BUILD_HOST: 'signet',
    KBUILD_BUILD_VERSION: '1',
  };
}

/** make in the source tree with O=obj; stdout lines go to `onLine`. Fails with the output's tail. */
function make(src: KernelSource, obj: string, recipe: ArchRecipe, args: string[], what: string, onLine?: (line: string) => void): Promise<string> {
  const map = `-ffile-prefix-map=${src.tree}/= -ffile-prefix-map=${obj}/=`;
  const argv = ['-C', src.tree, `O=${obj}`, `ARCH=${recipe.karch}`, `CROSS_COMPILE=${recipe.cross}`, `KCFLAGS=${map}`, `KAFLAGS=${map}`, ...args];
  return new Promise((resolve, reject) => {
    const child = spawnBuild('make', argv, { env: buildEnv(src) });
    const tail: string[] = [];
    let out = '';
    const keep = (line: string) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
    };
    let partial = '';
    child.stdout.on('data', (d: Buffer) => {
      const s = partial + d.toString('utf8');
      const lines = s.split('\n');
      partial = lines.pop()!;
      for (const l of lines) {
        out += l + '\n';
        keep(l);
        onLine?.(l);
      }
    });
    child.stderr.on('data', (d: Buffer) => d.toString('utf8').split('\n').filter(Boolean).forEach(keep));
    child.on('error', (e) => reject(new KernelError('E_KERNEL_TOOLCHAIN', `make could not start: ${e.message}`, 'apt-get install make', e)));
    child.on('close', (code) => {
      if (partial) out += partial;
      if (code === 0) return resolve(out);
      const last = tail.filter((l) => /error|Error|\*\*\*/.test(l)).pop() ?? tail.pop() ?? `exit ${code}`;
      reject(new KernelError('E_KERNEL_BUILD', `${what} failed: ${last.trim().slice(0, 300)}`, 'see the kernel build output (run `signet kernel build` on a terminal), fix the fragment or the toolchain'));
    });
  });
}

const inFlight = new Map<string, Promise<KernelBuild>>();

/** The board's kernel, from the cache or built now. */
export async function buildKernel(input: KernelBuildInput): Promise<KernelBuild> {
  const cache = input.cache ?? cacheDir();
  const recipe = KERNEL_ARCH[input.arch];
  const fragment = parseFragment(input.fragment, input.fragmentPath);
  const src = await kernelSource(input.version, cache);
  const [compiler, linker, hostCompiler] = await Promise.all([toolVersion(`${recipe.cross}gcc`), toolVersion(`${recipe.cross}ld`), toolVersion('gcc')]);
  await Promise.all(['make', 'flex', 'bison', 'bc'].map((t) => toolVersion(t)));
  const key = createHash('sha256')
    .update(JSON.stringify({ recipe: RECIPE, package: src.package, packageVersion: src.packageVersion, arch: input.arch, fragment: input.fragment, compiler, linker, hostCompiler }))
    .digest('hex');
  const flight = `${cache}\0${key}`;
  let p = inFlight.get(flight);
  if (!p) {
    p = buildOrReuse(input, cache, recipe, fragment.length, src, compiler, key).finally(() => inFlight.delete(flight));
    inFlight.set(flight, p);
  }
  return p;
}

function readEntry(dir: string, key: string, cached: boolean): KernelBuild | undefined {
  let meta: EntryMeta;
  try {
    meta = JSON.parse(readFileSync(join(dir, 'build.json'), 'utf8')) as EntryMeta;
  } catch {
    return undefined;
  }
  if (meta.recipe !== RECIPE) return undefined;
  const config = readFileSync(join(dir, 'config'), 'utf8');
  return {
    release: meta.release,
    arch: meta.arch,
    image: new Uint8Array(readFileSync(join(dir, meta.imageName))),
    imageName: meta.imageName,
    config,
    configSha256: meta.configSha256,
    optionsSet: meta.optionsSet,
    fragmentOptions: meta.fragmentOptions,
    sourcePackage: meta.sourcePackage,
    sourceVersion: meta.sourceVersion,
    sourceDateEpoch: meta.sourceDateEpoch,
    compiler: meta.compiler,
    key,
    dir,
    modulesDir: join(dir, 'modules'),
    cached,
  };
}

async function buildOrReuse(input: KernelBuildInput, cache: string, recipe: ArchRecipe, fragmentOptions: number, src: KernelSource, compiler: string, key: string): Promise<KernelBuild> {
  const kernels = join(cache, 'kernels');
  const entry = join(kernels, key);
  const tty = input.progress ?? process.stderr.isTTY === true;
  const say = (s: string) => {
    if (tty) process.stderr.write(`\r\x1b[K${s}`);
  };
  // One build of a key at a time across processes: the others wait for its entry.
  const locked = await lockBuild(kernels, key, () => readEntry(entry, key, true), (holder) =>
    say(`kernel ${input.boardId}: waiting for another build of the same kernel (pid ${holder || '?'})`),
  );
  if ('entry' in locked) return locked.entry;
  const work = join(kernels, `.build-${key.slice(0, 12)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const untrack = trackTemp(work);
  try {
    const obj = join(work, 'obj');
    const out = join(work, 'entry');
    mkdirSync(obj, { recursive: true });
    mkdirSync(join(out, 'modules', 'kernel'), { recursive: true });

    // 1. config: tinyconfig's fragments, then the board's (last wins), through allnoconfig.
    say(`kernel ${input.boardId}: configuring ${src.package} ${src.packageVersion} (${recipe.karch})`);
    const base = ['kernel/configs/tiny-base.config', 'kernel/configs/tiny.config', `arch/${recipe.karch}/configs/tiny.config`]
      .map((f) => join(src.tree, f))
      .filter((f) => existsSync(f))
      .map((f) => readFileSync(f, 'utf8'));
    const allconfig = join(work, 'allconfig');
    writeFileSync(allconfig, mergeFragments([...base, input.fragment]));
    await make(src, obj, recipe, ['-s', `KCONFIG_ALLCONFIG=${allconfig}`, 'allnoconfig'], 'configuring the kernel (make allnoconfig)');
    const config = readFileSync(join(obj, '.config'), 'utf8');
    const release = firstLine(await make(src, obj, recipe, ['-s', 'kernelrelease'], 'make kernelrelease'));
    checkFinalConfig({
      fragment: parseFragment(input.fragment, input.fragmentPath),
      final: config,
      symbols: kconfigSymbols(src.tree),
      file: input.fragmentPath,
      source: `Linux ${release} (${src.package} ${src.packageVersion})`,
      srcArch: recipe.karch,
    });

    // 2. compile.
    let compiled = 0;
    const jobs = availableParallelism();
    say(`kernel ${input.boardId}: building Linux ${release} ${recipe.target} with ${jobs} jobs`);
    await make(src, obj, recipe, [`-j${jobs}`, recipe.target], `building the kernel (make ${recipe.target})`, (line) => {
      if (/^\s+(CC|AS|LD|AR)\s/.test(line)) {
        compiled++;
        if (compiled % 10 === 0) say(`kernel ${input.boardId}: building Linux ${release} ${recipe.target}: ${compiled} steps`);
      }
    });

    // 3. the entry, renamed into place whole.
    const image = readFileSync(join(obj, recipe.image));
    writeFileSync(join(out, recipe.target), image);
    writeFileSync(join(out, 'config'), config);
    const builtin = join(obj, 'modules.builtin');
    writeFileSync(join(out, 'modules', 'modules.builtin'), existsSync(builtin) ? readFileSync(builtin) : '');
    const meta: EntryMeta = {
      recipe: RECIPE,
      release,
      arch: input.arch,
      imageName: recipe.target,
      configSha256: configSha256(config),
      optionsSet: countOptionsSet(config),
      fragmentOptions,
      sourcePackage: src.package,
      sourceVersion: src.packageVersion,
      sourceDateEpoch: src.sourceDateEpoch,
      compiler,
    };
    writeFileSync(join(out, 'build.json'), JSON.stringify(meta, null, 2) + '\n');
    try {
      renameSync(out, entry);
    } catch (e) {
      // Another build of the same key landed first; keep it (same inputs, same bytes).
      if (!readEntry(entry, key, true)) throw e;
    }
    say('');
    const built = readEntry(entry, key, false);
    if (!built) throw new KernelError('E_KERNEL_BUILD', `the kernel cache entry ${entry} cannot be read back`, `delete ${entry} and build again`);
    return built;
  } finally {
    if (tty) process.stderr.write('\r\x1b[K');
    rmSync(work, { recursive: true, force: true });
    untrack();
    locked.release();
  }
}
