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
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fetchDeb, nativeDebianArch, type DebianArch } from '../../sdk/build/debian';
import { attributeNative, checkNativeTcb, NATIVE_TCB_FILE, parseLinkMap, signetHostClassifier, type NativeTcb } from '../../sdk/build/tcb-native';
import { cacheDir as projectCacheDir, sdkRoot } from '../../sdk/util/paths';
import { NativeBuildError } from './errors';
import { buildDeviceLibs, deviceLinkArgs, deviceToolchain, DEVICE_CFLAGS, DEVICE_LDFLAGS, DEVICE_SPEED_CFLAGS } from './device';
import { compilerId, digest, inParallel, publish, run, type NativeTargetSpec } from './exec';

export { NativeBuildError, type NativeBuildErrorCode } from './errors';

export type NativeTarget = 'host' | 'arm64' | 'armhf';

export type { NativeTargetSpec } from './exec';

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
  /** Where the device libraries' pinned source packages come from (default deb.debian.org's pool; tests: a file:// folder). */
  sourceBaseUrl?: string;
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

/** Part of the cache key: hosts built before the link map was kept have no TCB record beside them. */
const TCB_RECORD = 'tcb-record-4';

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
    pending = build(target, cacheDir, options.sourceBaseUrl).finally(() => inFlight.delete(key));
    inFlight.set(key, pending);
  }
  return pending;
}

async function build(target: NativeTarget, cacheDir: string, sourceBaseUrl?: string): Promise<string> {
  const spec = nativeTargetSpec(target);
  const cc = await compilerId(spec);
  const engine = await engineDir(cacheDir);
  const engineSources = await Promise.all(ENGINE_FILES.map((f) => readFile(join(engine, f))));
  const hostC = hostSourcePath();
  const tlsC = hostSourcePath('tls.c');
  // net.c (the guest's network, DHCP client) and dhcp.c (DHCP messages), with its header.
  const netC = hostSourcePath('net.c');
  const dhcpC = hostSourcePath('dhcp.c');
  const ownSources = await Promise.all([hostC, tlsC, netC, dhcpC, hostSourcePath('dhcp.h')].map((f) => readFile(f)));

  // The device (arm64, armhf): musl and libraries built from source (device.ts); the build
  // machine: its glibc and Debian's static archives.
  const device = target === 'host' ? undefined : await deviceToolchain(target, spec, cacheDir);
  const libs: Array<{ archive: string; library: string; useFlags: string[]; stamp: Buffer }> = device
    ? (await buildDeviceLibs(target as 'arm64' | 'armhf', spec, device, cc, { cacheDir, sourceBaseUrl })).map((l) => ({ ...l, stamp: Buffer.from(l.source) }))
    : await Promise.all(
        STATIC_LIBS.map(async (want) => {
          const l = await staticLib(target, cacheDir, want);
          return { archive: l.archive, library: want.pkg, useFlags: [`-I${l.include}`], stamp: l.stamp };
        }),
      );
  const cflags = device ? [...DEVICE_CFLAGS, ...device.cppflags] : CFLAGS;

  const nativeDir = join(cacheDir, 'native');
  const engineFlags = device ? [...cflags, ...DEVICE_SPEED_CFLAGS] : cflags;
  const engineKey = digest([cc, ...engineFlags, ...engineSources]);
  const libParts: Buffer[] = [];
  for (const l of libs) libParts.push(l.stamp, await readFile(l.archive));
  const outKey = digest([cc, ...engineFlags, '--', ...(device ? [...device.stamp, ...DEVICE_LDFLAGS] : [...LDFLAGS, ...LIBS]), TCB_RECORD, ...ownSources, ...engineSources, '--', ...libParts]);
  const outDir = join(nativeDir, `${target}-${outKey}`);
  const binary = join(outDir, 'signet-host');
  if (existsSync(binary)) return binary;

  const objDir = join(nativeDir, 'obj');
  const engineObj = join(objDir, `duktape-${target}-${engineKey}.o`);
  await mkdir(objDir, { recursive: true });
  const tmp = await mkdtemp(join(nativeDir, `.tmp-${target}-`));
  try {
    const include = `-I${engine}`;
    // Our sources and Duktape's as they are named in the tree, not where this checkout is.
    const prefixMaps = [`-ffile-prefix-map=${dirname(hostC)}=bootloader/native`, `-ffile-prefix-map=${engine}=duktape`];
    const libFlags = [...new Set(libs.flatMap((l) => l.useFlags))];
    const own = [hostC, tlsC, netC, dhcpC].map((src) => ({ src, obj: join(tmp, basename(src).replace(/\.c$/, '.o')) }));
    const compileJobs: Array<() => Promise<unknown>> = own.map(({ src, obj }) => () => run(spec.cc, [...cflags, ...prefixMaps, '-Wall', '-Wextra', include, ...libFlags, '-c', src, '-o', obj], spec));
    if (!existsSync(engineObj)) {
      compileJobs.unshift(() =>
        run(spec.cc, [...engineFlags, ...prefixMaps, include, '-c', join(engine, 'duktape.c'), '-o', join(tmp, 'duktape.o')], spec).then(() => rename(join(tmp, 'duktape.o'), engineObj)),
      );
    }
    await inParallel(compileJobs);
    const linkMap = join(tmp, 'signet-host.map');
    const inputs = [...own.map((o) => o.obj), engineObj, ...libs.map((l) => l.archive)];
    await run(spec.cc, device ? deviceLinkArgs(device, join(tmp, 'signet-host'), linkMap, inputs) : [...LDFLAGS, `-Wl,-Map=${linkMap}`, '-o', join(tmp, 'signet-host'), ...inputs, ...LIBS], spec);
    await writeNativeTcb(tmp, linkMap, {
      ownDir: tmp,
      engineObject: engineObj,
      archives: libs.map((l) => ({ path: l.archive, pkg: l.library })),
      ...(device ? { libc: { dir: device.muslLibDir, library: 'musl' } } : {}),
    });
    for (const o of own) await rm(o.obj);
    await chmod(tmp, 0o755); // mkdtemp made it private
    await publish(tmp, outDir);
    return binary;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
