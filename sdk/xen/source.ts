/**
 * Xen's source as Debian ships it: the source package (`.dsc`, `.orig.tar.xz`, `.debian.tar.xz`)
 * from deb.debian.org, pinned by version and the sha256 of each file. Downloaded once into
 * cacheDir()/xen-src/<version>/, each file checked against its pin before it is kept (a mismatch
 * is E_XEN_SOURCE and the file is not kept), then unpacked with Debian's patches applied
 * (`dpkg-source -x`) into each build's own folder.
 */
import { join } from 'node:path';
import { checkPinnedFile, fetchPinnedFiles, unpackPinnedSource, type PinnedFile, type PinnedSourceError } from '../build/debian-source';
import { XenError } from '../disk/xen-errors';
import { cacheDir } from '../util/paths';

export type XenSourceFile = PinnedFile;

export interface XenSourcePin {
  /** Debian's package version, e.g. 4.17.5+72-g01140da4e8-1. */
  version: string;
  /** The .dsc, then the tarballs it names. */
  files: XenSourceFile[];
}

/** The pool folder of Debian's xen source package. */
export const XEN_POOL_URL = 'http://deb.debian.org/debian/pool/main/x/xen/';

/**
 * Pinned source packages, by version. 4.17.5+72-g01140da4e8-1 is the source of the
 * xen-hypervisor-4.17-armhf binary the `debian-binary` Xen uses.
 */
export const XEN_SOURCES: Record<string, XenSourcePin> = {
  '4.17.5+72-g01140da4e8-1': {
    version: '4.17.5+72-g01140da4e8-1',
    files: [
      { name: 'xen_4.17.5+72-g01140da4e8-1.dsc', sha256: 'f13956b67fb7a65707c2b0620d89b41ee5d203434dd7bb913017356791ee66c1', bytes: 4357 },
      { name: 'xen_4.17.5+72-g01140da4e8.orig.tar.xz', sha256: '53922f4d0a02c577f2ea9d63f65989cd88715779eebeed879ca1d314103ee06e', bytes: 4735560 },
      { name: 'xen_4.17.5+72-g01140da4e8-1.debian.tar.xz', sha256: '5bcf3812c64585e270e0b3fa6ee8fd16dff7b9bc0f61375d648c64672484c4d9', bytes: 139916 },
    ],
  },
};

export function xenSourcePin(version: string): XenSourcePin {
  const pin = XEN_SOURCES[version];
  if (!pin) {
    throw new XenError('E_XEN_SOURCE', `no pinned Xen source package for version ${version}`, `use one of ${Object.keys(XEN_SOURCES).join(', ')} in the board's xen.version, or pin the new one (its sha256s) in sdk/xen/source.ts`);
  }
  return pin;
}

/** Xen's source errors: E_XEN_SOURCE for what was fetched, E_XEN_BUILD for the unpack. */
const fail: PinnedSourceError = (kind, message, cause) =>
  kind === 'mismatch'
    ? new XenError('E_XEN_SOURCE', message, 'the mirror served other bytes: check the mirror, or pin the new source on purpose in sdk/xen/source.ts')
    : kind === 'download'
      ? new XenError('E_XEN_SOURCE', message, 'check the network (the Xen source comes from deb.debian.org once, then from the cache)', cause)
      : new XenError('E_XEN_BUILD', message, 'apt-get install dpkg-dev (run .ci/setup)');

/** Checks bytes against a pin: E_XEN_SOURCE on a mismatch. */
export function checkPinned(file: XenSourceFile, bytes: Uint8Array, from: string): void {
  checkPinnedFile(file, bytes, from, fail);
}

/** The pinned files in the cache, downloaded and checked when missing; returns the folder. */
export function fetchXenSource(pin: XenSourcePin, cache = cacheDir(), baseUrl = XEN_POOL_URL): Promise<string> {
  return fetchPinnedFiles(pin.files, join(cache, 'xen-src', pin.version.replace(/[^A-Za-z0-9.+~-]/g, '_')), baseUrl, fail);
}

/** Unpacks the source package with Debian's patches applied into `into` (which must not exist). */
export function unpackXenSource(pin: XenSourcePin, dir: string, into: string): Promise<void> {
  return unpackPinnedSource(join(dir, pin.files[0]!.name), into, join('xen', 'Makefile'), fail);
}
