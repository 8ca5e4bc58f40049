/**
 * The library sources the device's signet-host is built from: Debian bookworm's source packages
 * of the versions its -dev packages ship (`.dsc`, `.orig.tar.gz`, `.debian.tar.xz` from
 * deb.debian.org's pool), pinned by the sha256 of each file. Downloaded once into
 * cacheDir()/native-src/<package>_<version>/, every file (cached or fresh) checked against its
 * pin before use — a mismatch is E_NATIVE_SOURCE and the file is not kept — then unpacked with
 * Debian's patches applied (`dpkg-source -x`) into the build's own folder.
 */
import { join } from 'node:path';
import { checkPinnedFile, fetchPinnedFiles, unpackPinnedSource, type PinnedFile, type PinnedSourceError } from '../../sdk/build/debian-source';
import { NativeBuildError } from './errors';

export type NativeSourceFile = PinnedFile;

export interface NativeSourcePin {
  /** Debian source package name, e.g. mbedtls. */
  pkg: string;
  /** Debian version, e.g. 2.28.3-1. */
  version: string;
  /** The pool folder under the mirror, e.g. m/mbedtls/. */
  pool: string;
  /** The .dsc, then the tarballs it names. */
  files: NativeSourceFile[];
  /** A file the unpacked tree must have (a sanity check of the unpack). */
  marker: string;
}

export const DEBIAN_POOL_URL = 'http://deb.debian.org/debian/pool/main/';

/** bookworm's libmbedtls-dev 2.28.3-1, libuv1-dev 1.44.2-1+deb12u1, libsodium-dev 1.0.18-1+deb12u1. */
export const NATIVE_SOURCES = {
  mbedtls: {
    pkg: 'mbedtls',
    version: '2.28.3-1',
    pool: 'm/mbedtls/',
    files: [
      { name: 'mbedtls_2.28.3-1.dsc', sha256: 'a8bf91b5ffb40654efb0ebe0c962ac1e87b8eed5e104880982eaa70dd4bb33e3', bytes: 1684 },
      { name: 'mbedtls_2.28.3.orig.tar.gz', sha256: '3b4953aa55a681e084d31892d9904cc5328d6b4958ea57b90ae4b4f94ae69a8d', bytes: 3952799 },
      { name: 'mbedtls_2.28.3-1.debian.tar.xz', sha256: '3e03c61f63c7bbcd0bf695b53e6663ab448cc2e15429cd67d0e4f32e699645a9', bytes: 15360 },
    ],
    marker: 'library/ssl_tls.c',
  },
  libuv: {
    pkg: 'libuv1',
    version: '1.44.2-1+deb12u1',
    pool: 'libu/libuv1/',
    files: [
      { name: 'libuv1_1.44.2-1+deb12u1.dsc', sha256: '798be0a2bcbcd40bb85302f6ccbf02b240e1958d4ad9cf153b8101c3a82f21b9', bytes: 2029 },
      { name: 'libuv1_1.44.2.orig.tar.gz', sha256: 'd79b4b06ef04be85fb890bf39d55942cc64c2e15fd14eaa32dae5dce94485484', bytes: 1308776 },
      { name: 'libuv1_1.44.2-1+deb12u1.debian.tar.xz', sha256: '14fc605e7d1520137416fd8c097b58a191be9b07bdbb406f7b39c7894b7d66a5', bytes: 21460 },
    ],
    marker: 'src/unix/core.c',
  },
  libsodium: {
    pkg: 'libsodium',
    version: '1.0.18-1+deb12u1',
    pool: 'libs/libsodium/',
    files: [
      { name: 'libsodium_1.0.18-1+deb12u1.dsc', sha256: '2c23c57b5a9385dab5a1916014c9b5f2cdd7dadeb8a35b28c1bfb603ce7095c4', bytes: 1945 },
      { name: 'libsodium_1.0.18.orig.tar.gz', sha256: 'd59323c6b712a1519a5daf710b68f5e7fde57040845ffec53850911f10a5d4f4', bytes: 1619527 },
      { name: 'libsodium_1.0.18-1+deb12u1.debian.tar.xz', sha256: 'f410474e46346b06b162defa05b1be26906aeed6cf309e3d4ebe30b4d1350733', bytes: 8256 },
    ],
    marker: 'src/libsodium/crypto_sign/ed25519/ref10/open.c',
  },
} as const satisfies Record<string, NativeSourcePin>;

export type NativeSourceName = keyof typeof NATIVE_SOURCES;

/** The library sources' errors: E_NATIVE_SOURCE, with what to do. */
const fail: PinnedSourceError = (kind, message, cause) =>
  new NativeBuildError(
    'E_NATIVE_SOURCE',
    kind === 'mismatch'
      ? `${message} — the mirror or cache holds other bytes; delete the file to fetch it again, or pin a new version on purpose in bootloader/native/sources.ts`
      : kind === 'download'
        ? `${message} — the library sources come from deb.debian.org once, then from the cache`
        : `${message} — apt-get install dpkg-dev`,
    cause === undefined ? undefined : { cause },
  );

/** Checks bytes against a pin: E_NATIVE_SOURCE on a mismatch. */
export function checkNativeSource(file: NativeSourceFile, bytes: Uint8Array, from: string): void {
  checkPinnedFile(file, bytes, from, fail);
}

/** The pinned files in `cache`/native-src, downloaded and checked when missing; returns the folder. */
export function fetchNativeSource(pin: NativeSourcePin, cache: string, baseUrl = DEBIAN_POOL_URL): Promise<string> {
  const dir = join(cache, 'native-src', `${pin.pkg}_${pin.version}`.replace(/[^A-Za-z0-9.+~_-]/g, '_'));
  return fetchPinnedFiles(pin.files, dir, baseUrl + pin.pool, fail);
}

/** Unpacks the checked source package with Debian's patches applied into `into` (which must not exist). */
export function unpackNativeSource(pin: NativeSourcePin, dir: string, into: string): Promise<void> {
  return unpackPinnedSource(join(dir, pin.files[0]!.name), into, pin.marker, fail);
}

/** Fetches (or finds) and unpacks a pinned source into `into`. */
export async function nativeSourceTree(name: NativeSourceName, cache: string, into: string, baseUrl = DEBIAN_POOL_URL): Promise<string> {
  const pin = NATIVE_SOURCES[name];
  await unpackNativeSource(pin, await fetchNativeSource(pin, cache, baseUrl), into);
  return into;
}
