/**
 * Fetches packages from Debian's archive with the ordinary apt tools and
 * unpacks them into the project cache. Kernels and the Duktape engine source
 * come from here; nothing is downloaded from anywhere else.
 *
 * Layout under `<cache>/debs/`:
 *   <pkg>_<version>_<arch>.deb   the package as apt delivered it
 *   <pkg>_<arch>/                its contents (dpkg-deb -x), plus .signet-deb.json
 *
 * Concurrent callers (vitest runs test files in parallel processes) each
 * work in a private temporary folder and publish with rename(2), so a reader
 * never sees a half-written .deb or a half-extracted folder.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheDir } from '../util/paths';
import { DebianError } from './debian-errors';

export { DebianError, type DebianErrorCode } from './debian-errors';

export type DebianArch = 'amd64' | 'arm64' | 'armhf';

export const DEBIAN_ARCHES: readonly DebianArch[] = ['amd64', 'arm64', 'armhf'];

export interface DebianFetchOptions {
  /** Cache root to use instead of the project cache (sdk/util/paths cacheDir()). */
  cacheDir?: string;
  /**
   * Take an extracted copy of any version without asking apt for the current
   * candidate (no apt-cache run; works offline). For callers that key their
   * own caches by file contents, such as the native host build.
   */
  acceptCached?: boolean;
}

/** The fields of one `apt-cache show` stanza that we rely on. */
export interface DebianPackageInfo {
  package: string;
  version: string;
  /** The package's own architecture: the one asked for, or `all`. */
  architecture: string;
  /** Source package name, without the version in parentheses. */
  source: string;
  depends: string;
  sha256: string;
}

const STAMP_FILE = '.signet-deb.json';
const APT_ENV = { ...process.env, LC_ALL: 'C', LANG: 'C', DEBIAN_FRONTEND: 'noninteractive' };

/** The Debian architecture of the machine we run on (for arch-independent content). */
export function nativeDebianArch(): DebianArch {
  switch (process.arch) {
    case 'x64':
      return 'amd64';
    case 'arm64':
      return 'arm64';
    case 'arm':
      return 'armhf';
    default:
      throw new DebianError(
        'E_DEB_MISSING',
        `no Debian architecture is known for Node's process.arch '${process.arch}' — run Signet on an amd64, arm64 or armhf Debian machine`,
      );
  }
}

interface RunResult {
  stdout: string;
  stderr: string;
}

class CommandFailed extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(`${command} exited with ${exitCode}: ${stderr.trim().split('\n').pop() ?? ''}`, options);
  }
}

function run(cmd: string, args: string[], cwd?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env: APT_ENV, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error === null) {
        resolve({ stdout, stderr });
        return;
      }
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(
          new DebianError(
            'E_DEB_TOOL_MISSING',
            `${cmd} is not installed — Signet fetches kernels and the engine source with apt; run it on Debian or Ubuntu`,
            { cause: error },
          ),
        );
        return;
      }
      const exitCode = typeof error.code === 'number' ? error.code : null;
      reject(new CommandFailed(`${cmd} ${args.join(' ')}`, exitCode, String(stderr), { cause: error }));
    });
  });
}

async function enabledArches(): Promise<string[]> {
  try {
    const native = (await run('dpkg', ['--print-architecture'])).stdout.trim();
    const foreign = (await run('dpkg', ['--print-foreign-architectures'])).stdout.split(/\s+/);
    return [native, ...foreign].filter((a) => a !== '');
  } catch {
    return [];
  }
}

async function missingPackage(pkg: string, arch: DebianArch, cause?: unknown): Promise<DebianError> {
  const arches = await enabledArches();
  const fix = arches.includes(arch)
    ? `run 'apt-get update' (as root) and try again`
    : `run 'dpkg --add-architecture ${arch} && apt-get update' (as root) and try again`;
  return new DebianError('E_DEB_MISSING', `Debian package ${pkg}:${arch} is not known to apt — ${fix}`, { cause });
}

/** Parses deb822 stanzas; continuation lines are joined with a newline. */
function parseStanzas(text: string): Array<Map<string, string>> {
  const stanzas: Array<Map<string, string>> = [];
  let fields = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (fields.size > 0) stanzas.push(fields);
      fields = new Map();
      last = undefined;
      continue;
    }
    if ((line.startsWith(' ') || line.startsWith('\t')) && last !== undefined) {
      fields.set(last, `${fields.get(last)}\n${line.trim()}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    last = line.slice(0, colon);
    fields.set(last, line.slice(colon + 1).trim());
  }
  if (fields.size > 0) stanzas.push(fields);
  return stanzas;
}

/**
 * The candidate versions apt would install of `pkgs` for `arch`, by name;
 * packages apt does not know are absent. One apt-cache run for all of them,
 * since each run re-reads every package list (seconds, on a multiarch host).
 */
export async function showPackages(pkgs: readonly string[], arch: DebianArch): Promise<Map<string, DebianPackageInfo>> {
  const found = new Map<string, DebianPackageInfo>();
  let stdout: string;
  try {
    ({ stdout } = await run('apt-cache', ['show', '--no-all-versions', ...pkgs.map((p) => `${p}:${arch}`)]));
  } catch (error) {
    if (error instanceof DebianError) throw error;
    return found; // exit 100 "No packages found": none of them is known
  }
  for (const fields of parseStanzas(stdout)) {
    const pkg = fields.get('Package');
    const version = fields.get('Version');
    const sha256 = fields.get('SHA256');
    // Virtual and purely referenced packages have no downloadable stanza.
    if (pkg === undefined || version === undefined || sha256 === undefined || !pkgs.includes(pkg)) continue;
    if (found.has(pkg)) continue;
    found.set(pkg, {
      package: pkg,
      version,
      architecture: fields.get('Architecture') ?? arch,
      source: (fields.get('Source') ?? pkg).split(' ')[0]!,
      depends: fields.get('Depends') ?? '',
      sha256,
    });
  }
  return found;
}

/** The candidate version apt would install of `pkg` for `arch`. */
export async function showPackage(pkg: string, arch: DebianArch): Promise<DebianPackageInfo> {
  const info = (await showPackages([pkg], arch)).get(pkg);
  if (info === undefined) throw await missingPackage(pkg, arch);
  return info;
}

/** Package names in a Depends field, alternatives included, without versions or arch qualifiers. */
function dependencyNames(depends: string): string[] {
  return depends
    .split(/[,|]/)
    .map((d) => d.trim().split(/[\s(:]/)[0]!)
    .filter((d) => d !== '');
}

/**
 * Resolves a kernel meta package (`linux-image-cloud-arm64`, `linux-image-armmp`)
 * to the versioned package it currently points at, e.g.
 * `linux-image-6.1.0-56-cloud-arm64-unsigned`. The ABI number in that name
 * changes with kernel updates, so it is never written down in boards/.
 *
 * Debian signs some arm64 kernels for UEFI Secure Boot (source `linux-signed-*`);
 * we want the plain Image, so a signed target is swapped for its `-unsigned` twin.
 */
export async function resolveMeta(metaPkg: string, arch: DebianArch): Promise<string> {
  const meta = await showPackage(metaPkg, arch);
  // Already a versioned package: only the signed/unsigned swap applies.
  const target = isVersionedKernel(metaPkg) ? metaPkg : dependencyNames(meta.depends).find(isVersionedKernel);
  if (target === undefined) {
    throw new DebianError(
      'E_DEB_NOT_META',
      `Debian package ${metaPkg}:${arch} does not depend on a versioned linux-image package (Depends: ${meta.depends || 'none'}) — name a kernel meta package such as linux-image-cloud-arm64`,
    );
  }
  const unsigned = `${target}-unsigned`;
  const candidates = target === metaPkg ? new Map([[target, meta]]) : await showPackages([target, unsigned], arch);
  const concrete = candidates.get(target);
  if (concrete === undefined) throw await missingPackage(target, arch);
  if (!concrete.source.startsWith('linux-signed-')) return target;
  if (!candidates.has(unsigned) && !(await showPackages([unsigned], arch)).has(unsigned)) {
    throw await missingPackage(unsigned, arch);
  }
  return unsigned;
}

/** `linux-image-6.1.0-56-cloud-arm64`: the ABI number right after the prefix. */
function isVersionedKernel(name: string): boolean {
  return /^linux-image-\d/.test(name);
}

interface Stamp {
  package: string;
  arch: DebianArch;
  version: string;
  sha256: string;
}

async function readStamp(dir: string): Promise<Stamp | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, STAMP_FILE), 'utf8')) as Stamp;
  } catch {
    return undefined;
  }
}

function stampMatches(stamp: Stamp | undefined, info: DebianPackageInfo): boolean {
  return stamp !== undefined && stamp.version === info.version && stamp.sha256 === info.sha256;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** apt's own file name for a version: the epoch colon is written %3a. */
function debFileName(info: DebianPackageInfo): string {
  return `${info.package}_${info.version.replace(/:/g, '%3a')}_${info.architecture}.deb`;
}

async function download(info: DebianPackageInfo, arch: DebianArch, debsDir: string): Promise<string> {
  const debPath = join(debsDir, debFileName(info));
  if (existsSync(debPath) && (await sha256File(debPath)) === info.sha256) return debPath;

  const tmp = await mkdtemp(join(debsDir, '.tmp-download-'));
  try {
    const spec = `${info.package}:${arch}=${info.version}`;
    try {
      // Root's apt would hand the download to the _apt user, who cannot write
      // into our private temp folder; it falls back with a warning. Skip that.
      await run('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', spec], tmp);
    } catch (error) {
      if (error instanceof DebianError) throw error;
      const stderr = error instanceof CommandFailed ? error.stderr : '';
      if (/Unable to locate package|has no installation candidate|was not found|Can't select/.test(stderr)) {
        throw await missingPackage(info.package, arch, error);
      }
      throw new DebianError(
        'E_DEB_DOWNLOAD',
        `apt-get download ${spec} failed: ${stderr.trim().split('\n').pop() ?? 'no message'} — check the network and run 'apt-get update'`,
        { cause: error },
      );
    }
    const files = (await readdir(tmp)).filter((f) => f.endsWith('.deb'));
    if (files.length !== 1) {
      throw new DebianError('E_DEB_DOWNLOAD', `apt-get download ${spec} produced ${files.length} .deb files, expected 1 — report this as a Signet bug`);
    }
    const got = join(tmp, files[0]!);
    const digest = await sha256File(got);
    if (digest !== info.sha256) {
      throw new DebianError(
        'E_DEB_DOWNLOAD',
        `${files[0]} has SHA-256 ${digest} but apt's index says ${info.sha256} — run 'apt-get update' and try again`,
      );
    }
    await rename(got, debPath); // atomic; a concurrent winner wrote identical bytes
    return debPath;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function extract(info: DebianPackageInfo, arch: DebianArch, debPath: string, outDir: string, debsDir: string): Promise<void> {
  const tmp = await mkdtemp(join(debsDir, '.tmp-extract-'));
  try {
    try {
      await run('dpkg-deb', ['-x', debPath, tmp]);
    } catch (error) {
      if (error instanceof DebianError) throw error;
      const stderr = error instanceof CommandFailed ? error.stderr.trim() : String(error);
      throw new DebianError('E_DEB_EXTRACT', `dpkg-deb -x ${debPath} failed: ${stderr} — delete the file and try again`, {
        cause: error,
      });
    }
    const stamp: Stamp = { package: info.package, arch, version: info.version, sha256: info.sha256 };
    await writeFile(join(tmp, STAMP_FILE), `${JSON.stringify(stamp, null, 2)}\n`);
    await chmod(tmp, 0o755); // mkdtemp made it private

    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await rename(tmp, outDir);
        return;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
      }
      // Someone else published first: fine if it is the same version, else
      // move the stale folder aside and try again.
      if (stampMatches(await readStamp(outDir), info)) return;
      const trash = `${outDir}.stale-${process.pid}-${attempt}`;
      try {
        await rename(outDir, trash);
        await rm(trash, { recursive: true, force: true });
      } catch {
        // A concurrent caller moved it first; loop and look again.
      }
    }
    throw new DebianError('E_DEB_EXTRACT', `could not publish ${outDir}: it kept changing under us — retry when no other build is running`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

const inFlight = new Map<string, Promise<string>>();

/**
 * Downloads `pkg` for `arch` (the candidate version in apt's lists) into
 * `<cache>/debs/`, unless already there, and unpacks it into
 * `<cache>/debs/<pkg>_<arch>/`, whose path is returned.
 */
export function fetchDeb(pkg: string, arch: DebianArch, options: DebianFetchOptions = {}): Promise<string> {
  const debsDir = join(options.cacheDir ?? cacheDir(), 'debs');
  const key = `${debsDir}\0${pkg}:${arch}`;
  let pending = inFlight.get(key);
  if (pending === undefined) {
    pending = fetchDebUncoalesced(pkg, arch, debsDir, options.acceptCached === true).finally(() => inFlight.delete(key));
    inFlight.set(key, pending);
  }
  return pending;
}

async function fetchDebUncoalesced(pkg: string, arch: DebianArch, debsDir: string, acceptCached: boolean): Promise<string> {
  if (!/^[a-z0-9][a-z0-9+.-]+$/.test(pkg)) {
    throw new DebianError('E_DEB_MISSING', `'${pkg}' is not a valid Debian package name — use lower-case letters, digits and + . -`);
  }
  if (!DEBIAN_ARCHES.includes(arch)) {
    throw new DebianError('E_DEB_MISSING', `'${String(arch)}' is not a supported architecture — use one of ${DEBIAN_ARCHES.join(', ')}`);
  }
  const outDir = join(debsDir, `${pkg}_${arch}`);
  if (acceptCached) {
    const stamp = await readStamp(outDir);
    if (stamp !== undefined && stamp.package === pkg && stamp.arch === arch) return outDir;
  }
  const info = await showPackage(pkg, arch);
  if (stampMatches(await readStamp(outDir), info)) return outDir;
  await mkdir(debsDir, { recursive: true });
  const debPath = await download(info, arch, debsDir);
  await extract(info, arch, debPath, outDir, debsDir);
  return outDir;
}
