/**
 * What a qemu-virt-arm64 device stores for examples/hello, against a conventional image serving
 * the same app.
 *
 * size.kernel_bytes                 the board's kernel (arm64: an uncompressed Image), built from
 *                                   source or as Debian ships it (board kernel.source)
 * size.fit_kernel_bytes             the kernel as the FIT stores it (arm64 built from source:
 *                                   libdeflate-gzip -12; Debian's binary vmlinuz: its gzip)
 * size.initramfs_bytes              the initramfs cpio; size.ramdisk_bytes: as the FIT stores it
 *                                   (xz when the kernel has CONFIG_RD_XZ, else gzip)
 * size.boot_image_bytes (the FIT), size.app_image_bytes
 * size.signet_bytes                 boot image + app image: all our disk holds besides free space
 * size.percent_of_conventional_compressed_kernel   the same percentage against a conventional image
 *                                   whose kernel is stored compressed as the FIT stores it
 *                                   (bootloaders unpack both the same way)
 * size.conventional_bytes           the same kernel + Debian's nodejs for arm64 with its whole
 *                                   Depends closure (extracted .debs, everything in them) + the app
 * size.percent_of_conventional      signet_bytes as a percentage of conventional_bytes
 * size.percent_of_conventional_userspace   the same without the kernel both images carry:
 *                                   (initramfs + app image) ÷ (nodejs closure + app)
 * size.kernel_options               options set in the board's kernel config (=y/=m/values)
 * size.debian_kernel_bytes          Debian's cloud-arm64 kernel Image, what a conventional image boots
 * size.percent_of_conventional_debian_kernel  signet_bytes against Debian's kernel + the nodejs
 *                                   closure + the app: a conventional image with a distribution kernel
 *
 * "The same kernel" is the board's: with a kernel built from source (kernel.source
 * "debian-source") the conventional image gets that small kernel too, which flatters it.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, lstatSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadBoard } from '../sdk/board';
import { fetchDeb, nativeDebianArch, showPackages, type DebianArch } from '../sdk/build/debian';
import { buildBootImage } from '../sdk/disk/boot-image';
import { fetchDebianKernel } from '../sdk/disk/kernel';
import { countOptionsSet } from '../sdk/kernel/config';
import { buildRelease } from '../sdk/image/release';
import { initKeys } from '../sdk/keys/keyset';
import { cacheDir, sdkRoot } from '../sdk/util/paths';
import type { Figures } from './_lib';

/** Comma groups of a Depends field, each a list of alternatives, names only. */
function dependsGroups(depends: string): string[][] {
  return depends
    .split(',')
    .map((g) => g.split('|').map((a) => a.trim().split(/[\s(:]/)[0]!).filter(Boolean))
    .filter((g) => g.length > 0);
}

/**
 * The package and everything it depends on (first alternative apt knows), by name, with the
 * architecture to fetch each under: `arch`, or for Architecture: all packages the build
 * machine's (apt names those `pkg:<native>`; the contents are the same everywhere).
 */
export async function dependencyClosure(pkg: string, arch: DebianArch): Promise<Map<string, DebianArch>> {
  const known = new Map<string, { depends: string; arch: DebianArch }>();
  const asked = new Set<string>();
  const native = nativeDebianArch();
  let frontier = [pkg];
  while (frontier.length) {
    for (const n of frontier) asked.add(n);
    const found = await showPackages(frontier, arch); // one apt-cache run per level
    for (const [name, info] of found) known.set(name, { depends: info.depends, arch });
    const rest = frontier.filter((n) => !found.has(n));
    if (rest.length && native !== arch) {
      for (const [name, info] of await showPackages(rest, native)) {
        if (info.architecture !== 'all') continue; // a package of the build machine, not of the board
        found.set(name, info);
        known.set(name, { depends: info.depends, arch: native });
      }
    }
    const next = new Set<string>();
    for (const g of [...found.values()].flatMap((i) => dependsGroups(i.depends))) {
      if (g.some((a) => known.has(a))) continue;
      for (const a of g) if (!asked.has(a)) next.add(a); // asked together; the first one apt knows wins below
    }
    frontier = [...next];
  }
  // Keep, per group, only the first alternative that exists (the one apt would pick).
  const chosen = new Map<string, DebianArch>([[pkg, arch]]);
  const visit = (name: string) => {
    for (const g of dependsGroups(known.get(name)?.depends ?? '')) {
      const pick = g.find((a) => known.has(a));
      if (pick && !chosen.has(pick)) {
        chosen.set(pick, known.get(pick)!.arch);
        visit(pick);
      }
    }
  };
  visit(pkg);
  return chosen;
}

export function treeBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === '.signet-deb.json') continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) n += treeBytes(p);
    else n += lstatSync(p).size;
  }
  return n;
}

export async function run(): Promise<Figures> {
  const board = loadBoard('qemu-virt-arm64');
  mkdirSync(cacheDir(), { recursive: true });
  const work = mkdtempSync(join(cacheDir(), 'bench-size-'));
  try {
    const keys = join(work, 'keys');
    await initKeys({ dir: keys });
    const app = join(work, 'app.simg');
    await buildRelease({ projectDir: join(sdkRoot(), 'examples', 'hello'), version: '1.2.0', securityCounter: 3, keysDir: keys, out: app, typecheck: false });
    const appBytes = readFileSync(app).length;
    const boot = await buildBootImage({ board, keysDir: keys });

    const closure = await dependencyClosure('nodejs', board.arch);
    let nodeBytes = 0;
    for (const [pkg, arch] of closure) nodeBytes += treeBytes(await fetchDeb(pkg, arch));
    const kernelBytes = boot.kernel.kernel.length;
    const debianKernel = await fetchDebianKernel(board);
    // The conventional image ships the kernel's modules folder too; counting only the Image is
    // generous to it.
    const conventional = kernelBytes + nodeBytes + appBytes;
    const conventionalGz = boot.fitKernel.data.length + nodeBytes + appBytes;
    const signet = boot.fit.length + appBytes;
    return {
      kernel_bytes: { value: kernelBytes, unit: 'bytes' },
      fit_kernel_bytes: { value: boot.fitKernel.data.length, unit: 'bytes' },
      initramfs_bytes: { value: boot.initramfs.length, unit: 'bytes' },
      ramdisk_bytes: { value: boot.ramdisk.length, unit: 'bytes' },
      boot_image_bytes: { value: boot.fit.length, unit: 'bytes' },
      app_image_bytes: { value: appBytes, unit: 'bytes' },
      signet_bytes: { value: signet, unit: 'bytes' },
      nodejs_closure_packages: { value: closure.size, unit: 'packages' },
      conventional_bytes: { value: conventional, unit: 'bytes' },
      percent_of_conventional: { value: (100 * signet) / conventional, unit: '%' },
      percent_of_conventional_compressed_kernel: { value: (100 * signet) / conventionalGz, unit: '%' },
      percent_of_conventional_userspace: { value: (100 * (boot.initramfs.length + appBytes)) / (nodeBytes + appBytes), unit: '%' },
      kernel_options: { value: countOptionsSet(boot.kernel.config), unit: 'options' },
      debian_kernel_bytes: { value: debianKernel.kernel.length, unit: 'bytes' },
      percent_of_conventional_debian_kernel: { value: (100 * signet) / (debianKernel.kernel.length + nodeBytes + appBytes), unit: '%' },
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
