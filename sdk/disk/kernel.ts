/**
 * The Linux kernel for a board, from one of two sources (board.kernel.source):
 * - "debian-binary" (the default): Debian's packages (board.kernel.package, a meta package such
 *   as linux-image-cloud-arm64, resolved to the versioned package it points at), fetched with
 *   `apt-get download` into the project cache by sdk/build/debian; drivers come as modules;
 * - "debian-source": the board's minimal kernel built from Debian's linux-source-<version> with
 *   boards/<id>/kernel.config (sdk/kernel), everything built in.
 * Either way the caller gets a BoardKernel.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Board } from '../board';
import { fetchDeb, resolveMeta, type DebianArch } from '../build/debian';
import { writeFileAtomic } from '../util/fs-atomic';
import { buildBoardKernel } from '../kernel/board';
import { cacheDir } from '../util/paths';
import { DiskError } from './errors';
import { resolveModules, type ResolvedModule } from './kmod';

export type KernelSourceKind = 'debian-binary' | 'debian-source';

export interface BoardKernel {
  /** The kernel release (`uname -r`), e.g. 6.1.0-56-cloud-arm64, or 6.1.192 when built from source. */
  version: string;
  /** Where it came from (board.kernel.source). */
  source: KernelSourceKind;
  /** The kernel image (arm64: an uncompressed Image, or gzip'd as Debian ships it; armhf: a zImage). */
  kernel: Uint8Array;
  /** Its build configuration (/boot/config-<version>, or the .config built). */
  config: string;
  /**
   * lib/modules/<version> inside the extracted package; for a kernel built from source, a folder
   * with its modules.builtin and no modules (everything the guest needs is built in).
   */
  modulesDir: string;
  /**
   * The versioned Debian package, e.g. linux-image-6.1.0-56-cloud-arm64-unsigned; for a kernel
   * built from source, the source package and its version, e.g. "linux-source-6.1 6.1.192-3".
   */
  package: string;
  /**
   * The kernel file's mtime in the package: Debian builds reproducibly and sets every file's
   * mtime to the package's SOURCE_DATE_EPOCH, so this is a timestamp that comes from the inputs.
   */
  sourceDateEpoch: number;
}

/**
 * Virtio drivers the boot stage needs to see its flash (/dev/vda) on a KVM guest: both
 * transports, so the disk may be virtio-mmio (QEMU virt's `virtio-blk-device`) or virtio-pci.
 * Debian's cloud-arm64 kernel builds them as modules.
 */
export const KVM_BLOCK_MODULES = ['virtio_mmio', 'virtio_pci', 'virtio_blk'] as const;

/** The network driver /init loads on a KVM guest (the card is virtio-net-pci under QEMU). */
export const KVM_NET_MODULES = ['virtio_net'] as const;

const APT_LISTS = '/var/lib/apt/lists';

/** Names, sizes and mtimes of apt's package lists: what every apt-cache answer depends on. */
function aptListsKey(): string | undefined {
  try {
    const h = createHash('sha256');
    for (const f of readdirSync(APT_LISTS).sort()) {
      const st = statSync(join(APT_LISTS, f));
      h.update(`${f}\0${st.size}\0${st.mtimeMs}\n`);
    }
    return h.digest('hex');
  } catch {
    return undefined;
  }
}

/**
 * resolveMeta + fetchDeb, remembering the answer while apt's package lists stay the same: each
 * apt-cache run re-reads every list (about 4 s on a multiarch host) and would otherwise be paid
 * two or three times by every `signet fit`/`disk`. Any `apt-get update` changes the key.
 */
async function fetchKernelPackage(meta: string, arch: DebianArch): Promise<string> {
  const key = aptListsKey();
  const memo = join(cacheDir(), 'debs', `.resolve-${meta}_${arch}.json`);
  if (key !== undefined) {
    try {
      const m = JSON.parse(readFileSync(memo, 'utf8')) as { key: string; pkg: string };
      if (m.key === key) return await fetchDeb(m.pkg, arch, { acceptCached: true });
    } catch {
      // no memo yet, or unreadable: resolve with apt below
    }
  }
  const pkg = await resolveMeta(meta, arch);
  const root = await fetchDeb(pkg, arch);
  if (key !== undefined) writeFileAtomic(memo, JSON.stringify({ key, pkg }) + '\n');
  return root;
}

/** The board's kernel from its kernel.source: Debian's binary package, or built from source. */
export function fetchKernel(board: Board): Promise<BoardKernel> {
  return board.kernel.source === 'debian-source' ? builtKernel(board) : fetchDebianKernel(board);
}

/** The minimal kernel built from Debian's source with boards/<id>/kernel.config (cached by its inputs). */
export async function builtKernel(board: Board): Promise<BoardKernel> {
  const k = await buildBoardKernel(board);
  return {
    version: k.release,
    source: 'debian-source',
    kernel: k.image,
    config: k.config,
    modulesDir: k.modulesDir,
    package: `${k.sourcePackage} ${k.sourceVersion}`,
    sourceDateEpoch: k.sourceDateEpoch,
  };
}

/** Debian's binary kernel package for the board (board.kernel.package). */
export async function fetchDebianKernel(board: Board): Promise<BoardKernel> {
  const arch: DebianArch = board.arch;
  const root = await fetchKernelPackage(board.kernel.package, arch);
  const pkg = JSON.parse(readFileSync(join(root, '.signet-deb.json'), 'utf8')).package as string;
  const boot = join(root, 'boot');
  const list = (() => {
    try {
      return readdirSync(boot);
    } catch {
      return [];
    }
  })();
  const images = list.filter((f) => f.startsWith('vmlinuz-'));
  if (images.length !== 1) {
    throw new DiskError('E_KERNEL_PACKAGE', `Debian package ${pkg}:${arch} holds ${images.length} /boot/vmlinuz-* files, expected 1`, `set kernel.package of board ${board.id} to a linux-image package`);
  }
  const version = images[0]!.slice('vmlinuz-'.length);
  const kernelPath = join(boot, images[0]!);
  const configPath = join(boot, `config-${version}`);
  const modulesDir = join(root, 'lib', 'modules', version);
  let config: string;
  try {
    config = readFileSync(configPath, 'utf8');
    statSync(join(modulesDir, 'kernel'));
  } catch (cause) {
    throw new DiskError('E_KERNEL_PACKAGE', `Debian package ${pkg}:${arch} has no /boot/config-${version} or no lib/modules/${version}/kernel`, `delete ${root} and run again`, cause);
  }
  return {
    version,
    source: 'debian-binary',
    kernel: new Uint8Array(readFileSync(kernelPath)),
    config,
    modulesDir,
    package: pkg,
    sourceDateEpoch: Math.floor(statSync(kernelPath).mtimeMs / 1000),
  };
}

/** `CONFIG_X=y` / `=m` / unset, from a kernel config. */
export function kernelConfigValue(config: string, option: string): 'y' | 'm' | undefined {
  const m = new RegExp(`^${option}=([ym])$`, 'm').exec(config);
  return m ? (m[1] as 'y' | 'm') : undefined;
}

/** The modules `names` need (dependencies first), skipping what the kernel has built in. */
export function kernelModules(k: BoardKernel, names: readonly string[]): ResolvedModule[] {
  return resolveModules(k.modulesDir, names);
}
