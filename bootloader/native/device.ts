/**
 * The device's signet-host (arm64, armhf: the board initramfs' /init) is built against musl and
 * libraries compiled from source, for size: glibc's static libc.a alone was 885 KB of a 2.1 MB
 * /init, Debian's libmbedcrypto.a carries every algorithm.
 *
 * - C library: Debian's musl-dev for the target architecture (libc.a, crt1.o, crti.o, crtn.o and
 *   headers), used with Debian's cross gcc through -nostdinc/-nostdlib; kernel headers
 *   (linux/watchdog.h, asm/) from Debian's linux-libc-dev of the same architecture; gcc's own
 *   include folder (stddef.h's builtins, arm_neon.h) and libgcc (armhf's division helpers,
 *   aarch64's long double). Both packages fetched with fetchDeb, never installed.
 * - mbed TLS, libuv and the libsodium files of Ed25519 verification: Debian's source packages
 *   (sources.ts, pinned by sha256), their .c files compiled directly — no configure or cmake:
 *   mbed TLS with bootloader/native/mbedtls-config.h; libuv with the defines its CMakeLists
 *   gives Linux (_GNU_SOURCE, _POSIX_C_SOURCE=200112, _FILE_OFFSET_BITS=64, _LARGEFILE_SOURCE);
 *   libsodium with NATIVE_LITTLE_ENDIAN (and HAVE_TI_MODE on aarch64: the 64-bit field
 *   arithmetic, as its configure picks) and a version.h written from version.h.in.
 * - Flags (DEVICE_CFLAGS): -Os, but -O2 for Duktape and mbed TLS (DEVICE_SPEED_CFLAGS, measured), one section per function
 *   and object with --gc-sections, no unwind tables (C only, nothing unwinds), no PIE (the
 *   binary is static: PIE code is larger and gets no ASLR here), -fstack-protector-strong (what
 *   Debian's packages were built with; musl provides __stack_chk_guard/__stack_chk_fail).
 *   No _FORTIFY_SOURCE: musl has no __*_chk functions (glibc's FORTIFY is header + libc work).
 * - Reproducible: -ffile-prefix-map maps the unpacked source and the cache folders away, `ar D`
 *   keeps no timestamps; each library archive is cached under <cache>/native/lib/ by the hash of
 *   everything that goes into it (pinned sources, flags, config header, compiler identity, musl
 *   and kernel-header packages).
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fetchDeb, type DebianArch } from '../../sdk/build/debian';
import { sdkRoot } from '../../sdk/util/paths';
import { NativeBuildError } from './errors';
import { digest, inParallel, publish, run, type NativeTargetSpec } from './exec';
import { DEBIAN_POOL_URL, NATIVE_SOURCES, nativeSourceTree, type NativeSourceName } from './sources';

/** Compiler flags for everything compiled for the device (our C, Duktape, the libraries). */
export const DEVICE_CFLAGS = [
  '-Os',
  '-std=gnu99',
  '-D_FILE_OFFSET_BITS=64',
  '-ffunction-sections',
  '-fdata-sections',
  '-fno-asynchronous-unwind-tables',
  '-fno-unwind-tables',
  '-fno-pie',
  '-fstack-protector-strong',
];

/**
 * Appended (the last -O wins) for the two CPU-hot parts: Duktape (the boot stage is JavaScript)
 * and mbed TLS (bignum: RSA and ECDHE in every handshake). Measured under qemu-aarch64 (TCG, as
 * the stage runs): a JSON/array workload took 2.2-2.7 s with Duktape at -Os, 1.4-1.7 s at -O2,
 * for 87 KB more code (Duktape 219 KB at -Os, 306 KB at -O2); see bootloader/native/README.md.
 */
export const DEVICE_SPEED_CFLAGS = ['-O2'];

/** The musl C library and kernel headers for one target, and the compiler's own parts. */
export interface DeviceToolchain {
  /** -nostdinc and the include folders, in order. */
  cppflags: string[];
  crt1: string;
  crti: string;
  crtn: string;
  crtbegin: string;
  crtend: string;
  /** musl's libc.a (libm and libpthread are in it). */
  libc: string;
  /** The folder of musl's libc.a and crt objects (the TCB names what comes from it `musl`). */
  muslLibDir: string;
  libgcc: string;
  /** What identifies the toolchain in cache keys: the two packages' stamps and gcc's folders. */
  stamp: string[];
}

async function onlySubdir(dir: string, what: string): Promise<string> {
  const subs = existsSync(dir) ? await readdir(dir) : [];
  if (subs.length !== 1) throw new NativeBuildError('E_NATIVE_LIB_MISSING', `${what}: expected one folder in ${dir}, found ${subs.length} — delete the package folder and retry`);
  return join(dir, subs[0]!);
}

export async function deviceToolchain(arch: DebianArch, spec: NativeTargetSpec, cacheDir: string): Promise<DeviceToolchain> {
  const musl = await fetchDeb('musl-dev', arch, { cacheDir, acceptCached: true });
  const kernel = await fetchDeb('linux-libc-dev', arch, { cacheDir, acceptCached: true });
  const muslInclude = await onlySubdir(join(musl, 'usr', 'include'), `musl-dev:${arch}`);
  const muslLib = await onlySubdir(join(musl, 'usr', 'lib'), `musl-dev:${arch}`);
  const kernelArchInclude = (await readdir(join(kernel, 'usr', 'include'))).find((d) => d.includes('-linux-'));
  if (kernelArchInclude === undefined || !existsSync(join(kernel, 'usr', 'include', 'linux', 'watchdog.h'))) {
    throw new NativeBuildError('E_NATIVE_LIB_MISSING', `Debian's linux-libc-dev:${arch} has no usr/include/linux/watchdog.h or usr/include/<triple>/asm — delete ${kernel} and retry`);
  }
  const file = async (name: string) => (await run(spec.cc, [`-print-file-name=${name}`], spec)).stdout.trim();
  const gccInclude = await file('include');
  const libgcc = (await run(spec.cc, ['-print-libgcc-file-name'], spec)).stdout.trim();
  const tc: DeviceToolchain = {
    cppflags: ['-nostdinc', '-isystem', muslInclude, '-isystem', gccInclude, '-idirafter', join(kernel, 'usr', 'include'), '-idirafter', join(kernel, 'usr', 'include', kernelArchInclude)],
    crt1: join(muslLib, 'crt1.o'),
    crti: join(muslLib, 'crti.o'),
    crtn: join(muslLib, 'crtn.o'),
    crtbegin: await file('crtbeginT.o'),
    crtend: await file('crtend.o'),
    libc: join(muslLib, 'libc.a'),
    muslLibDir: muslLib,
    libgcc,
    stamp: [await readFile(join(musl, '.signet-deb.json'), 'utf8'), await readFile(join(kernel, '.signet-deb.json'), 'utf8'), gccInclude, libgcc],
  };
  for (const f of [tc.crt1, tc.crti, tc.crtn, tc.crtbegin, tc.crtend, tc.libc, tc.libgcc]) {
    if (!existsSync(f)) throw new NativeBuildError('E_NATIVE_LIB_MISSING', `${f} is missing (musl-dev:${arch} or ${spec.debianPackage}) — delete ${musl} and retry, or reinstall ${spec.debianPackage}`);
  }
  return tc;
}

/** Link flags of the device binary (part of its cache key). */
export const DEVICE_LDFLAGS = [
  '-static',
  '-no-pie',
  '-nostdlib',
  '-s',
  '-Wl,--gc-sections',
  '-Wl,--build-id=none',
  // The boards' kernels use 4 KiB pages: aarch64 ld's default 64 KiB segment alignment only pads the file (~45 KB of zeros).
  '-Wl,-z,max-page-size=4096',
];

/** The link of the device binary: musl's start files, the objects and archives, musl's libc, libgcc. */
export function deviceLinkArgs(tc: DeviceToolchain, out: string, map: string, inputs: string[]): string[] {
  return [
    ...DEVICE_LDFLAGS,
    `-Wl,-Map=${map}`,
    '-o',
    out,
    tc.crt1,
    tc.crti,
    tc.crtbegin,
    ...inputs,
    '-Wl,--start-group',
    tc.libc,
    tc.libgcc,
    '-Wl,--end-group',
    tc.crtend,
    tc.crtn,
  ];
}

/** A library built from source for the device. */
export interface DeviceLib {
  /** Library name in the TCB record (mbedtls, libuv, libsodium). */
  library: string;
  /** The source package it came from, e.g. mbedtls 2.28.3-1. */
  source: string;
  archive: string;
  /** Flags that code using its headers needs (-I..., -D...). */
  useFlags: string[];
}

interface LibRecipe {
  name: NativeSourceName;
  library: string;
  archiveName: string;
  /** Source files relative to the unpacked tree. */
  files: (arch: DebianArch) => string[];
  /** Flags to compile them (relative -I paths are resolved in the tree). */
  flags: (arch: DebianArch) => string[];
  /** Headers the users need, relative to the tree; copied to the cached include folder. */
  includeDirs: string[];
  /** Extra preparation of the unpacked tree (generated headers). */
  prepare?: (tree: string) => Promise<void>;
  /** Flags for code that includes its headers, besides -I<include>. */
  useDefines?: string[];
  /** Built against bootloader/native/mbedtls-config.h: its folder is on the include path and its bytes are in the cache key. */
  configHeader?: true;
}

const CONFIG_HEADER = 'mbedtls-config.h';

/** mbed TLS's modules that mbedtls-config.h enables (the others compile to nothing). */
const MBEDTLS_FILES = [
  'aes', 'asn1parse', 'asn1write', 'base64', 'bignum', 'chacha20', 'chachapoly', 'cipher', 'cipher_wrap', 'constant_time',
  'ecdh', 'ecdsa', 'ecp', 'ecp_curves', 'error', 'gcm', 'hmac_drbg', 'md', 'oid', 'pem', 'pk', 'pk_wrap', 'pkparse', 'platform_util',
  'poly1305', 'rsa', 'rsa_internal', 'sha256', 'sha512', 'ssl_ciphersuites', 'ssl_cli', 'ssl_msg', 'ssl_srv', 'ssl_tls',
  'x509', 'x509_crt',
].map((f) => `library/${f}.c`);

/** libuv's Linux sources as its CMakeLists lists them (the fs, process and DNS parts are gc'd away unused). */
const UV_FILES = [
  'fs-poll', 'idna', 'inet', 'random', 'strscpy', 'strtok', 'threadpool', 'timer', 'uv-common', 'uv-data-getter-setters', 'version',
].map((f) => `src/${f}.c`).concat(
  [
    'async', 'core', 'dl', 'fs', 'getaddrinfo', 'getnameinfo', 'loop-watcher', 'loop', 'pipe', 'poll', 'process', 'random-devurandom',
    'signal', 'stream', 'tcp', 'thread', 'tty', 'udp', 'proctitle', 'linux-core', 'linux-inotify', 'linux-syscalls', 'procfs-exepath',
    'random-getrandom', 'random-sysctl-linux', 'epoll',
  ].map((f) => `src/unix/${f}.c`),
);

/** libsodium: crypto_sign_ed25519_verify_detached and what it calls (SHA-512, the curve, crypto_verify_32, sodium_memzero). */
const SODIUM_FILES = [
  'crypto_sign/ed25519/ref10/open.c',
  'crypto_sign/ed25519/ref10/sign.c', // _crypto_sign_ed25519_ref10_hinit
  'crypto_core/ed25519/ref10/ed25519_ref10.c',
  'crypto_hash/sha512/cp/hash_sha512_cp.c',
  'crypto_verify/sodium/verify.c',
  'sodium/utils.c',
].map((f) => `src/libsodium/${f}`);

const RECIPES: LibRecipe[] = [
  {
    name: 'libsodium',
    library: 'libsodium',
    archiveName: 'libsodium.a',
    files: () => SODIUM_FILES,
    flags: (arch) => ['-DNATIVE_LITTLE_ENDIAN=1', '-DCONFIGURED=1', ...(arch === 'arm64' ? ['-DHAVE_TI_MODE=1'] : []), '-Isrc/libsodium/include', '-Isrc/libsodium/include/sodium'],
    includeDirs: ['src/libsodium/include'],
    prepare: async (tree) => {
      // What configure writes: the version header sodium.h includes.
      const dir = join(tree, 'src', 'libsodium', 'include', 'sodium');
      const text = (await readFile(join(dir, 'version.h.in'), 'utf8'))
        .replace('@VERSION@', '1.0.18')
        .replace('@SODIUM_LIBRARY_VERSION_MAJOR@', '10')
        .replace('@SODIUM_LIBRARY_VERSION_MINOR@', '3')
        .replace('@SODIUM_LIBRARY_MINIMAL_DEF@', '');
      await writeFile(join(dir, 'version.h'), text);
    },
  },
  {
    name: 'libuv',
    library: 'libuv',
    archiveName: 'libuv.a',
    files: () => UV_FILES,
    flags: () => ['-D_GNU_SOURCE', '-D_POSIX_C_SOURCE=200112', '-D_LARGEFILE_SOURCE', '-Iinclude', '-Isrc'],
    includeDirs: ['include'],
  },
  {
    name: 'mbedtls',
    library: 'mbedtls',
    archiveName: 'libmbedtls.a',
    files: () => MBEDTLS_FILES,
    flags: () => [...DEVICE_SPEED_CFLAGS, `-DMBEDTLS_CONFIG_FILE="${CONFIG_HEADER}"`, '-Iinclude', '-Ilibrary'],
    includeDirs: ['include'],
    useDefines: [`-DMBEDTLS_CONFIG_FILE="${CONFIG_HEADER}"`],
    configHeader: true,
  },
];

function configHeaderPath(): string {
  const path = join(sdkRoot(), 'bootloader', 'native', CONFIG_HEADER);
  if (!existsSync(path)) throw new NativeBuildError('E_NATIVE_SOURCE_MISSING', `${path} is missing — restore it from the Signet sources`);
  return path;
}

export interface DeviceLibOptions {
  cacheDir: string;
  /** Where the pinned source packages are downloaded from (tests: a local folder's file:// URL). */
  sourceBaseUrl?: string;
}

/**
 * Builds (or finds in the cache) the three libraries for a device target: archive and headers
 * under <cache>/native/lib/<library>-<target>-<hash>/.
 */
export async function buildDeviceLibs(target: 'arm64' | 'armhf', spec: NativeTargetSpec, tc: DeviceToolchain, cc: string, options: DeviceLibOptions): Promise<DeviceLib[]> {
  const config = await readFile(configHeaderPath());
  const configDir = join(sdkRoot(), 'bootloader', 'native');
  const out: DeviceLib[] = [];
  // One library at a time, each compiling one file per core.
  for (const r of RECIPES) {
    const pin = NATIVE_SOURCES[r.name];
    const flags = r.flags(target);
    const configFlags = r.configHeader ? [`-I${configDir}`] : [];
    const key = digest([cc, ...DEVICE_CFLAGS, ...flags, ...tc.stamp, ...pin.files.map((f) => f.sha256), ...r.files(target), r.configHeader ? config : '', 'device-lib-1']);
    const dir = join(options.cacheDir, 'native', 'lib', `${r.library}-${target}-${key}`);
    const archive = join(dir, r.archiveName);
    const useFlags = [`-I${join(dir, 'include')}`, ...(r.useDefines ?? []), ...configFlags];
    out.push({ library: r.library, source: `${pin.pkg} ${pin.version}`, archive, useFlags });
    if (existsSync(archive)) continue;
    await mkdir(join(options.cacheDir, 'native', 'lib'), { recursive: true });
    const tmp = await mkdtemp(join(options.cacheDir, 'native', 'lib', `.tmp-${r.library}-`));
    try {
      const tree = await nativeSourceTree(r.name, options.cacheDir, join(tmp, 'src'), options.sourceBaseUrl ?? DEBIAN_POOL_URL);
      await r.prepare?.(tree);
      const objDir = join(tmp, 'obj');
      await mkdir(objDir);
      const resolved = flags.map((f) => (f.startsWith('-I') ? `-I${join(tree, f.slice(2))}` : f));
      const objs = r.files(target).map((f) => join(objDir, f.replace(/\//g, '_').replace(/\.c$/, '.o')));
      await inParallel(
        r.files(target).map((f, i) => () =>
          run(
            spec.cc,
            [
              ...DEVICE_CFLAGS,
              ...tc.cppflags,
              `-ffile-prefix-map=${tree}=${pin.pkg}-${pin.version}`,
              `-ffile-prefix-map=${configDir}=signet`,
              ...resolved,
              ...configFlags,
              '-w',
              '-c',
              join(tree, f),
              '-o',
              objs[i]!,
            ],
            spec,
          ),
        ),
      );
      // Deterministic archive (no timestamps, uids), members in a fixed order.
      const ar = spec.cc.replace(/gcc$/, 'ar');
      await run(ar, ['rcsD', join(tmp, r.archiveName), ...objs.map((o) => relative(tmp, o))], { ...spec, cc: ar }, tmp);
      const stage = join(tmp, 'out');
      await mkdir(join(stage, 'include'), { recursive: true });
      for (const inc of r.includeDirs) await run('cp', ['-R', '--', `${join(tree, inc)}/.`, join(stage, 'include')], spec);
      await rename(join(tmp, r.archiveName), join(stage, r.archiveName));
      await chmod(stage, 0o755);
      await publish(stage, dir); // a concurrent build may have won
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  return out;
}
