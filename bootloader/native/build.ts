/**
 * Builds signet-host (host.c + tls.c + Duktape + libsodium + libuv + mbed TLS) for the machine we run on
 * or, with a Debian cross compiler, as a static binary for a board's initramfs.
 *
 * The engine source is Debian's duktape-dev (`/usr/share/duktape/duktape.c`)
 * ed25519 verification Debian's libsodium-dev and the event loop Debian's
 * libuv1-dev for the target's architecture (`libsodium.a`, `libuv_a.a` and
 * their headers), all fetched with fetchDeb, never the system include or
 * library folders. Outputs are cached under
 * `<cache>/native/<target>-<hash>/signet-host`, the hash covering host.c, the
 * engine source, the library packages and archives, the compiler's identity
 * and every flag; the engine object (the slow part) is cached on its own so
 * editing host.c relinks in a second.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fetchDeb, nativeDebianArch, type DebianArch } from '../../sdk/build/debian';
import { attributeNative, checkNativeTcb, NATIVE_TCB_FILE, parseLinkMap, signetHostClassifier, type NativeTcb } from '../../sdk/build/tcb-native';
import { cacheDir as projectCacheDir, sdkRoot } from '../../sdk/util/paths';
import { NativeBuildError } from './errors';

export { NativeBuildError, type NativeBuildErrorCode } from './errors';

export type NativeTarget = 'host' | 'arm64' | 'armhf';

export interface NativeTargetSpec {
  /** Compiler command. */
  cc: string;
  /** Debian package that provides `cc`. */
  debianPackage: string;
  /** ELF e_machine of the output on this target (host: of the build machine). */
  elfMachine: number;
  /** What `signet_native.arch` reports. */
  arch: 'x86_64' | 'aarch64' | 'armhf';
}

const HOST_SPECS: Partial<Record<NodeJS.Architecture, NativeTargetSpec>> = {
  x64: { cc: 'gcc', debianPackage: 'gcc', elfMachine: 62, arch: 'x86_64' },
  arm64: { cc: 'gcc', debianPackage: 'gcc', elfMachine: 183, arch: 'aarch64' },
  arm: { cc: 'gcc', debianPackage: 'gcc', elfMachine: 40, arch: 'armhf' },
};

const CROSS_SPECS: Record<Exclude<NativeTarget, 'host'>, NativeTargetSpec> = {
  arm64: { cc: 'aarch64-linux-gnu-gcc', debianPackage: 'gcc-aarch64-linux-gnu', elfMachine: 183, arch: 'aarch64' },
  armhf: { cc: 'arm-linux-gnueabihf-gcc', debianPackage: 'gcc-arm-linux-gnueabihf', elfMachine: 40, arch: 'armhf' },
};

export const NATIVE_TARGETS: readonly NativeTarget[] = ['host', 'arm64', 'armhf'];

export function nativeTargetSpec(target: NativeTarget): NativeTargetSpec {
  if (target === 'host') {
    const spec = HOST_SPECS[process.arch];
    if (spec === undefined) {
      throw new NativeBuildError('E_NATIVE_TARGET', `signet-host cannot be built for this machine (${process.arch}) — build on x86_64, aarch64 or armhf`);
    }
    return spec;
  }
  const spec = CROSS_SPECS[target];
  if (spec === undefined) {
    throw new NativeBuildError('E_NATIVE_TARGET', `unknown native target '${String(target)}' — use one of ${NATIVE_TARGETS.join(', ')}`);
  }
  return spec;
}

/**
 * Duktape keeps its default configuration. gnu99 for host.c's POSIX/Linux calls;
 * 64-bit file offsets so armhf can address block devices past 2 GiB.
 */
const CFLAGS = ['-O2', '-std=gnu99', '-D_FILE_OFFSET_BITS=64'];
/** Static everywhere: the initramfs has no libc, and host tests run it chrooted as PID 1. */
const LDFLAGS = ['-static', '-s'];
/** libuv wants threads (its thread pool is only started for file and DNS work, which we do not use). */
const LIBS = ['-lm', '-lpthread'];

const ENGINE_FILES = ['duktape.c', 'duktape.h', 'duk_config.h'] as const;

/** Debian's package with libsodium's static archive and headers, fetched for the target's arch. */
export const SODIUM_PACKAGE = 'libsodium-dev';
/** Debian's package with libuv's static archive (libuv_a.a) and headers: the event loop. */
export const UV_PACKAGE = 'libuv1-dev';
/** Debian's mbed TLS 2.28 (libmbedtls.a, libmbedx509.a, libmbedcrypto.a and headers): TLS for the runtime. */
export const TLS_PACKAGE = 'libmbedtls-dev';

/** The Debian architecture whose libraries a target links. */
export function nativeTargetDebianArch(target: NativeTarget): DebianArch {
  return target === 'host' ? nativeDebianArch() : target;
}

/** host.c (or tls.c) under the SDK root, so this also works from the bundled CLI in dist/. */
function hostSourcePath(file = 'host.c'): string {
  const path = join(sdkRoot(), 'bootloader', 'native', file);
  if (!existsSync(path)) {
    throw new NativeBuildError('E_NATIVE_SOURCE_MISSING', `${path} is missing — restore it from the Signet sources`);
  }
  return path;
}

export interface NativeBuildOptions {
  /** Cache root to use instead of the project cache (sdk/util/paths cacheDir()). */
  cacheDir?: string;
}

function run(cmd: string, args: string[], spec: NativeTargetSpec): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env: { ...process.env, LC_ALL: 'C' }, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error === null) {
        resolve({ stdout, stderr });
      } else if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(
          new NativeBuildError('E_NATIVE_CC_MISSING', `${cmd} is not installed — run 'apt-get install ${spec.debianPackage}'`, {
            cause: error,
          }),
        );
      } else {
        const tail = String(stderr).trim().split('\n').slice(-12).join('\n');
        reject(new NativeBuildError('E_NATIVE_COMPILE', `${cmd} failed: ${tail}`, { cause: error }));
      }
    });
  });
}

/** The compiler's identity: version line and target triple. */
async function compilerId(spec: NativeTargetSpec): Promise<string> {
  const version = (await run(spec.cc, ['--version'], spec)).stdout.split('\n')[0]!.trim();
  const machine = (await run(spec.cc, ['-dumpmachine'], spec)).stdout.trim();
  return `${version} (${machine})`;
}

async function engineDir(cacheDir: string): Promise<string> {
  // duktape.c is architecture-independent: take the build machine's package.
  const root = await fetchDeb('duktape-dev', nativeDebianArch(), { cacheDir, acceptCached: true });
  const dir = join(root, 'usr', 'share', 'duktape');
  for (const f of ENGINE_FILES) {
    if (!existsSync(join(dir, f))) {
      throw new NativeBuildError(
        'E_NATIVE_ENGINE_MISSING',
        `Debian's duktape-dev has no /usr/share/duktape/${f} — delete ${root} and retry; Signet needs duktape-dev 2.x`,
      );
    }
  }
  return dir;
}

/** A static library from a Debian -dev package of the target's architecture. */
interface StaticLib {
  /** Folder holding its headers. */
  include: string;
  /** The static archive, usr/lib/<triple>/<archive>. */
  archive: string;
  /** What identifies it in the cache hash: the package stamp (version, .deb SHA-256). */
  stamp: Buffer;
}

/** The static libraries host.c links, in link order: package, archive file, a header that must be there. */
const STATIC_LIBS = [
  { pkg: SODIUM_PACKAGE, archive: 'libsodium.a', header: 'sodium.h' },
  { pkg: UV_PACKAGE, archive: 'libuv_a.a', header: 'uv.h' },
  // mbed TLS in its own link order: ssl needs x509 needs crypto.
  { pkg: TLS_PACKAGE, archive: 'libmbedtls.a', header: 'mbedtls/ssl.h' },
  { pkg: TLS_PACKAGE, archive: 'libmbedx509.a', header: 'mbedtls/x509_crt.h' },
  { pkg: TLS_PACKAGE, archive: 'libmbedcrypto.a', header: 'mbedtls/config.h' },
] as const;

async function staticLib(target: NativeTarget, cacheDir: string, want: (typeof STATIC_LIBS)[number]): Promise<StaticLib> {
  const arch = nativeTargetDebianArch(target);
  const root = await fetchDeb(want.pkg, arch, { cacheDir, acceptCached: true });
  const include = join(root, 'usr', 'include');
  const libRoot = join(root, 'usr', 'lib');
  let archives: string[] = [];
  try {
    archives = (await readdir(libRoot)).map((d) => join(libRoot, d, want.archive)).filter((f) => existsSync(f));
  } catch {
    // reported below
  }
  if (archives.length !== 1 || !existsSync(join(include, want.header))) {
    throw new NativeBuildError(
      'E_NATIVE_LIB_MISSING',
      `Debian's ${want.pkg}:${arch} has ${archives.length} usr/lib/*/${want.archive} (expected 1) or no usr/include/${want.header} — delete ${root} and retry`,
    );
  }
  return { include, archive: archives[0]!, stamp: await readFile(join(root, '.signet-deb.json')) };
}

function digest(parts: Array<string | Buffer>): string {
  const hash = createHash('sha256');
  for (const p of parts) {
    const b = typeof p === 'string' ? Buffer.from(p) : p;
    hash.update(`${b.length}:`); // length-prefixed, so parts cannot run together
    hash.update(b);
  }
  return hash.digest('hex').slice(0, 16);
}

/** Moves `from` to `to` unless `to` already exists (a concurrent build won). */
async function publish(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if ((code === 'ENOTEMPTY' || code === 'EEXIST') && existsSync(to)) return;
    throw error;
  }
}

/** Part of the cache key: hosts built before the link map was kept have no TCB record beside them. */
const TCB_RECORD = 'tcb-record-3';

/** The TCB of the linked binary by library (sdk/build/tcb-native), written beside it; the map itself is dropped. */
async function writeNativeTcb(dir: string, linkMap: string, inputs: Parameters<typeof signetHostClassifier>[0]): Promise<void> {
  const tcb = attributeNative(parseLinkMap(await readFile(linkMap, 'utf8')), new Uint8Array(await readFile(join(dir, 'signet-host'))), signetHostClassifier(inputs));
  await writeFile(join(dir, NATIVE_TCB_FILE), JSON.stringify(tcb, null, 1) + '\n');
  await rm(linkMap);
}

/** The bytes of a built signet-host by library (libc, mbedtls, duktape, libuv, ...), from its build. */
export async function nativeHostTcb(binary: string): Promise<NativeTcb> {
  const path = join(dirname(binary), NATIVE_TCB_FILE);
  return checkNativeTcb(JSON.parse(await readFile(path, 'utf8')), path);
}

const inFlight = new Map<string, Promise<string>>();

/** Builds signet-host for `target` (or finds it in the cache) and returns the binary's path. */
export function buildNativeHost(target: NativeTarget, options: NativeBuildOptions = {}): Promise<string> {
  const cacheDir = options.cacheDir ?? projectCacheDir();
  const key = `${cacheDir}\0${target}`;
  let pending = inFlight.get(key);
  if (pending === undefined) {
    pending = build(target, cacheDir).finally(() => inFlight.delete(key));
    inFlight.set(key, pending);
  }
  return pending;
}

async function build(target: NativeTarget, cacheDir: string): Promise<string> {
  const spec = nativeTargetSpec(target);
  const cc = await compilerId(spec);
  const engine = await engineDir(cacheDir);
  const engineSources = await Promise.all(ENGINE_FILES.map((f) => readFile(join(engine, f))));
  const libs = await Promise.all(STATIC_LIBS.map((l) => staticLib(target, cacheDir, l)));
  const hostC = hostSourcePath();
  const hostSource = await readFile(hostC);
  const tlsC = hostSourcePath('tls.c');
  const tlsSource = await readFile(tlsC);
  // net.c (the guest's network, DHCP client) and dhcp.c (DHCP messages), with its header.
  const netC = hostSourcePath('net.c');
  const dhcpC = hostSourcePath('dhcp.c');
  const netSources = await Promise.all([netC, dhcpC, hostSourcePath('dhcp.h')].map((f) => readFile(f)));

  const nativeDir = join(cacheDir, 'native');
  const engineKey = digest([cc, ...CFLAGS, ...engineSources]);
  const libParts: Buffer[] = [];
  for (const l of libs) libParts.push(l.stamp, await readFile(l.archive));
  const outKey = digest([cc, ...CFLAGS, '--', ...LDFLAGS, ...LIBS, TCB_RECORD, hostSource, tlsSource, ...netSources, ...engineSources, '--', ...libParts]);
  const outDir = join(nativeDir, `${target}-${outKey}`);
  const binary = join(outDir, 'signet-host');
  if (existsSync(binary)) return binary;

  const objDir = join(nativeDir, 'obj');
  const engineObj = join(objDir, `duktape-${target}-${engineKey}.o`);
  await mkdir(objDir, { recursive: true });
  const tmp = await mkdtemp(join(nativeDir, `.tmp-${target}-`));
  try {
    const include = `-I${engine}`;
    const hostObj = join(tmp, 'host.o');
    const tlsObj = join(tmp, 'tls.o');
    const netObj = join(tmp, 'net.o');
    const dhcpObj = join(tmp, 'dhcp.o');
    const includes = [...new Set(libs.map((l) => `-I${l.include}`))];
    await Promise.all([
      run(spec.cc, [...CFLAGS, '-Wall', '-Wextra', include, ...includes, '-c', hostC, '-o', hostObj], spec),
      run(spec.cc, [...CFLAGS, '-Wall', '-Wextra', include, ...includes, '-c', tlsC, '-o', tlsObj], spec),
      run(spec.cc, [...CFLAGS, '-Wall', '-Wextra', include, ...includes, '-c', netC, '-o', netObj], spec),
      run(spec.cc, [...CFLAGS, '-Wall', '-Wextra', '-c', dhcpC, '-o', dhcpObj], spec),
      existsSync(engineObj)
        ? Promise.resolve()
        : run(spec.cc, [...CFLAGS, include, '-c', join(engine, 'duktape.c'), '-o', join(tmp, 'duktape.o')], spec).then(() =>
            rename(join(tmp, 'duktape.o'), engineObj),
          ),
    ]);
    const linkMap = join(tmp, 'signet-host.map');
    await run(spec.cc, [...LDFLAGS, `-Wl,-Map=${linkMap}`, '-o', join(tmp, 'signet-host'), hostObj, tlsObj, netObj, dhcpObj, engineObj, ...libs.map((l) => l.archive), ...LIBS], spec);
    await writeNativeTcb(tmp, linkMap, { ownDir: tmp, engineObject: engineObj, archives: libs.map((l, i) => ({ path: l.archive, pkg: STATIC_LIBS[i]!.pkg })) });
    await rm(hostObj);
    await rm(tlsObj);
    await rm(netObj);
    await rm(dhcpObj);
    await chmod(tmp, 0o755); // mkdtemp made it private
    await publish(tmp, outDir);
    return binary;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
