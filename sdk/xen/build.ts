/**
 * Xen built from Debian's source (board `"xen": { "source": "debian-source", "version": … }`):
 *
 *   1. the pinned source package (source.ts), unpacked with Debian's patches into a fresh folder;
 *   2. config: Debian's own hypervisor config (debian/xen-kconfig: defconfig, CONFIG_DEBUG off)
 *      with boards/<id>/xen.config appended, through `make olddefconfig`; every option the
 *      fragment sets must keep its value (E_XEN_CONFIG), checked before anything is compiled;
 *   3. `make -C xen XEN_TARGET_ARCH=arm32 CROSS_COMPILE=arm-linux-gnueabihf-` (the hypervisor
 *      only, no tools), and xen/xen renamed into cacheDir()/xen/<key>/.
 *
 * Reproducible: Xen records its build date, time, user, domain and host; all are fixed (the
 * date is the package's changelog date) and Xen compiles with paths relative to its tree, so
 * the same inputs give the same bytes. The key is the sha256 of every input: the recipe below,
 * the pinned version and file hashes, the fragment's bytes and the compilers' versions.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { boardFolder, type Board } from '../board';
import { XenError } from '../disk/xen-errors';
import { parseDotConfig, parseFragment } from '../kernel/config';
import { changelogEpoch, run } from '../kernel/source';
import { lockBuild, spawnBuild } from '../util/build-lock';
import { trackTemp } from '../util/fs-atomic';
import { cacheDir } from '../util/paths';
import { fetchXenSource, unpackXenSource, xenSourcePin } from './source';

/** Bump when anything below changes what a build produces. */
const RECIPE = 'signet-xen-1';
export const XEN_FRAGMENT = 'xen.config';
const CROSS: Partial<Record<Board['arch'], { xenArch: string; cross: string }>> = {
  armhf: { xenArch: 'arm32', cross: 'arm-linux-gnueabihf-' },
};

export interface XenBuild {
  image: Uint8Array;
  /** The final xen/.config. */
  config: string;
  version: string;
  sourceDateEpoch: number;
  compiler: string;
  key: string;
  dir: string;
  cached: boolean;
}

type EntryMeta = { recipe: string; version: string; sourceDateEpoch: number; compiler: string; sha256: string };

const firstLine = (s: string) => s.trim().split('\n')[0]!.trim();

async function toolVersion(tool: string): Promise<string> {
  const r = await run(tool, ['--version']);
  if (r.code !== 0) throw new XenError('E_XEN_BUILD', `${tool} is not installed (needed to build Xen)`, 'run .ci/setup, or apt-get install gcc-arm-linux-gnueabihf make flex bison python3 dpkg-dev');
  return firstLine(r.stdout || r.stderr);
}

function make(tree: string, args: string[], env: NodeJS.ProcessEnv, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawnBuild('make', ['-C', join(tree, 'xen'), ...args], { env });
    const tail: string[] = [];
    const keep = (d: Buffer) => {
      for (const l of d.toString('utf8').split('\n').filter(Boolean)) {
        tail.push(l);
        if (tail.length > 20) tail.shift();
      }
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (e) => reject(new XenError('E_XEN_BUILD', `make could not start: ${e.message}`, 'apt-get install make', e)));
    child.on('close', (code) => {
      if (code === 0) return resolve();
      const last = tail.filter((l) => /error|Error|\*\*\*/.test(l)).pop() ?? tail.pop() ?? `exit ${code}`;
      reject(new XenError('E_XEN_BUILD', `${what} failed: ${last.trim().slice(0, 300)}`, 'see `signet xen build` output; fix boards/<id>/xen.config or the toolchain'));
    });
  });
}

function readEntry(dir: string, key: string, cached: boolean): XenBuild | undefined {
  let meta: EntryMeta;
  try {
    meta = JSON.parse(readFileSync(join(dir, 'build.json'), 'utf8')) as EntryMeta;
  } catch {
    return undefined;
  }
  if (meta.recipe !== RECIPE) return undefined;
  const image = new Uint8Array(readFileSync(join(dir, 'xen')));
  if (createHash('sha256').update(image).digest('hex') !== meta.sha256) return undefined;
  return { image, config: readFileSync(join(dir, 'config'), 'utf8'), version: meta.version, sourceDateEpoch: meta.sourceDateEpoch, compiler: meta.compiler, key, dir, cached };
}

/** The fragment's options must keep their values in the final config. */
export function checkXenConfig(fragmentText: string, file: string, final: string): void {
  const got = parseDotConfig(final);
  for (const o of parseFragment(fragmentText, file)) {
    const want = o.value === 'n' ? undefined : o.value;
    const have = got.get(o.name);
    if ((have ?? undefined) !== want && !(want === undefined && have === 'n')) {
      throw new XenError('E_XEN_CONFIG', `${file}:${o.line}: ${o.name} is ${have ?? 'not set'} in Xen's final config, not ${o.value}`, 'check its dependencies in xen/common/Kconfig or xen/arch/arm/Kconfig');
    }
  }
}

const inFlight = new Map<string, Promise<XenBuild>>();

/** The board's Xen built from the pinned Debian source with its fragment: from the cache, or built now. */
export async function buildBoardXen(board: Board, options: { cache?: string } = {}): Promise<XenBuild> {
  const x = board.xen;
  if (!x || x.source !== 'debian-source') {
    throw new XenError('E_XEN_SOURCE', `board ${board.id} uses Debian's binary Xen (xen.source "${x?.source ?? 'debian-binary'}"): there is nothing to build`, 'set xen.source to "debian-source" and xen.version in its board.json, with a xen.config beside it');
  }
  const recipe = CROSS[board.arch];
  if (!recipe) throw new XenError('E_XEN_BOARD', `Xen from source is wired for armhf only, not ${board.arch}`, 'use xen.source "debian-binary"');
  const pin = xenSourcePin(x.version ?? '');
  const fragmentPath = join(boardFolder(board.id), XEN_FRAGMENT);
  let fragment: string;
  try {
    fragment = readFileSync(fragmentPath, 'utf8');
  } catch (cause) {
    throw new XenError('E_XEN_CONFIG', `board ${board.id} builds Xen from source but has no ${fragmentPath}`, 'write the fragment (see docs/xen.md)', cause);
  }
  try {
    parseFragment(fragment, fragmentPath);
  } catch (e) {
    throw new XenError('E_XEN_CONFIG', (e as Error).message, 'write CONFIG_NAME=value or "# CONFIG_NAME is not set"', e);
  }
  const cache = options.cache ?? cacheDir();
  const [compiler, linker, hostCompiler] = await Promise.all([toolVersion(`${recipe.cross}gcc`), toolVersion(`${recipe.cross}ld`), toolVersion('gcc')]);
  await Promise.all(['make', 'flex', 'bison', 'python3', 'dpkg-source'].map((t) => toolVersion(t)));
  const key = createHash('sha256')
    .update(JSON.stringify({ recipe: RECIPE, arch: recipe.xenArch, version: pin.version, files: pin.files.map((f) => f.sha256), fragment, compiler, linker, hostCompiler }))
    .digest('hex');
  const flight = `${cache}\0${key}`;
  let p = inFlight.get(flight);
  if (!p) {
    p = buildOrReuse(board, cache, key, pin.version, fragment, fragmentPath, recipe, compiler).finally(() => inFlight.delete(flight));
    inFlight.set(flight, p);
  }
  return p;
}

async function buildOrReuse(board: Board, cache: string, key: string, version: string, fragment: string, fragmentPath: string, recipe: { xenArch: string; cross: string }, compiler: string): Promise<XenBuild> {
  const root = join(cache, 'xen');
  const entry = join(root, key);
  // One build of a key at a time across processes: the others wait for its entry.
  const locked = await lockBuild(root, key, () => readEntry(entry, key, true));
  if ('entry' in locked) return locked.entry;
  const work = join(root, `.build-${key.slice(0, 12)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const untrack = trackTemp(work);
  try {
    const pin = xenSourcePin(version);
    const files = await fetchXenSource(pin, cache);
    mkdirSync(work, { recursive: true });
    const tree = join(work, 'src');
    await unpackXenSource(pin, files, tree);
    const sourceDateEpoch = changelogEpoch(readFileSync(join(tree, 'debian', 'changelog'), 'utf8')) ?? 0;
    const date = new Date(sourceDateEpoch * 1000);
    const keepEnv: NodeJS.ProcessEnv = {};
    for (const k of ['PATH', 'HOME', 'TMPDIR']) if (process.env[k] !== undefined) keepEnv[k] = process.env[k];
    const env: NodeJS.ProcessEnv = {
      ...keepEnv,
      LC_ALL: 'C',
      TZ: 'UTC',
      SOURCE_DATE_EPOCH: String(sourceDateEpoch),
      XEN_BUILD_DATE: date.toUTCString(),
      XEN_BUILD_TIME: date.toISOString().slice(11, 19),
      XEN_WHOAMI: 'signet',
      XEN_DOMAIN: 'signet',
      XEN_BUILD_HOST: 'signet',
      XEN_TARGET_ARCH: recipe.xenArch,
      CROSS_COMPILE: recipe.cross,
      // Debian's rules: the hypervisor build must not download anything.
      WGET: '/bin/false',
      GIT: '/bin/false',
    };
    const base = readFileSync(join(tree, 'debian', 'xen-kconfig'), 'utf8');
    writeFileSync(join(tree, 'xen', '.config'), `${base.trimEnd()}\n${fragment}`);
    const args = [`XEN_TARGET_ARCH=${recipe.xenArch}`, `CROSS_COMPILE=${recipe.cross}`];
    await make(tree, [...args, 'olddefconfig'], env, 'configuring Xen (make olddefconfig)');
    const config = readFileSync(join(tree, 'xen', '.config'), 'utf8');
    checkXenConfig(fragment, fragmentPath, config);
    await make(tree, [...args, `-j${availableParallelism()}`], env, `building Xen for ${board.id}`);
    const image = readFileSync(join(tree, 'xen', 'xen'));
    const out = join(work, 'entry');
    mkdirSync(out);
    writeFileSync(join(out, 'xen'), image);
    writeFileSync(join(out, 'config'), config);
    const meta: EntryMeta = { recipe: RECIPE, version, sourceDateEpoch, compiler, sha256: createHash('sha256').update(image).digest('hex') };
    writeFileSync(join(out, 'build.json'), JSON.stringify(meta, null, 2) + '\n');
    try {
      renameSync(out, entry);
    } catch (e) {
      if (!readEntry(entry, key, true)) throw e;
    }
    const built = readEntry(entry, key, false);
    if (!built) throw new XenError('E_XEN_BUILD', `the Xen cache entry ${entry} cannot be read back`, `delete ${entry} and build again`);
    return built;
  } finally {
    rmSync(work, { recursive: true, force: true });
    untrack();
    locked.release();
  }
}

/** For tests: whether a build's entry exists (no build). */
export function xenEntryExists(dir: string): boolean {
  return existsSync(join(dir, 'build.json'));
}
