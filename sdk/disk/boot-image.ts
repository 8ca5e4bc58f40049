/**
 * The boot image (`signet fit`): a U-Boot FIT holding the board's Debian kernel, the Signet
 * initramfs (boot stage + trust anchor) and the machine's device tree, with its one configuration
 * signed sha256,rsa2048 by `<keys>/fit.key`; plus the public-key DTB to bake into U-Boot
 * (`/signature/key-fit`, `required = "conf"`).
 *
 * The FIT's root node also carries the boot image's TCB record (`signet,tcb`, sdk/disk/boot-tcb):
 * kernel, /init by library, initramfs parts; signed with the configuration, read by `signet tcb`.
 *
 * Compressed where the boot chain can unpack it: an arm64 kernel Image built from source is
 * stored gzip'd by libdeflate at its strongest level (`compression = "gzip"`: U-Boot's bootm
 * inflates it to the load address, five times faster than it unpacks lzma, which is a quarter
 * smaller; docs/kernel.md), Debian's binary Image gzip'd as before, an armhf zImage as it is
 * (it unpacks itself); the initramfs is gzip'd when the kernel unpacks gzip (CONFIG_RD_GZIP=y),
 * else zstd'd (CONFIG_RD_ZSTD) or xz'd (CONFIG_RD_XZ), declared "none" since the kernel, not
 * U-Boot, unpacks it.
 * QEMU's -kernel takes a raw or gzip'd Image only: `signet run --direct` unpacks an lzma one
 * (boot images made before the change).
 *
 * Deterministic: the FIT timestamp is SOURCE_DATE_EPOCH when set, else the kernel package's own
 * build time, every other input is content, gzip is GNU gzip -9 -n or libdeflate-gzip -12 on
 * stdin (sdk/disk/gzip.ts) and xz/zstd their CLIs
 * single-threaded (sdk/disk/compress.ts); two builds give identical bytes.
 */
import { join } from 'node:path';
import { buildBootStage, type BootBuildOptions } from '../../bootloader/build';
import { buildNativeHost, nativeHostTcb } from '../../bootloader/native/build';
import type { Board } from '../board';
import { buildFit, type FitArch, type FitCompression } from '../fit/fit';
import { publicKeyDtb } from '../fit/keydtb';
import { nodeCrypto } from '../image/crypto-node';
import { loadTrustedRootFile, MAX_ROOT_BYTES } from '../ota/root-file';
import { readInputFile } from '../util/files';
import { BOOT_TCB_PROPERTY, buildBootTcb, encodeBootTcb, type BootTcbRecord } from './boot-tcb';
import { bootReleaseProperties } from '../ota/boot-target';
import { asSignetError, DiskError } from './errors';
import { FIT_KEY_NAME, loadFitSigner } from './fit-key';
import { xzDeterministic, zstdDeterministic } from './compress';
import { gzipDeterministic, gzipSmallestDeterministic, isGzip } from './gzip';
import { buildInitramfs } from './initramfs';
import { fetchKernel, kernelConfigValue, kernelModules, KVM_BLOCK_MODULES, KVM_NET_MODULES, type BoardKernel } from './kernel';
import { networkConfLine } from './network';
import { xenHasNetwork } from './xen-net';
import { dumpMachineDtb, kernelDtb } from './qemu';

export interface BootImageOptions {
  board: Board;
  /** Folder from `signet keys init`: root.json (trust anchor) and fit.key (FIT signing key). */
  keysDir: string;
  /** The FIT signing key instead of <keysDir>/fit.key: a key file or a `pkcs11:` URI (RSA-2048 in a token). */
  fitKey?: string;
  /** Compile test mode into the boot stage: the guest powers off after the app. */
  testMode?: boolean;
  /** FIT timestamp; default SOURCE_DATE_EPOCH, else the kernel package's build time. */
  timestamp?: number;
  /**
   * The boot image as an OTA release (sdk/ota/boot-target.ts): signed root properties
   * signet,board / signet,version / signet,security-counter, which `signet publish` and the agent need.
   */
  release?: { version: string; securityCounter: number };
}

export interface BootImage {
  fit: Uint8Array;
  /** /signature/key-fit alone, to merge into U-Boot's control DTB. */
  keyDtb: Uint8Array;
  /** The initramfs as built (cpio newc). */
  initramfs: Uint8Array;
  /** What the FIT holds as its ramdisk: the initramfs, zstd'd, xz'd or gzip'd when the kernel can unpack that. */
  ramdisk: Uint8Array;
  ramdiskCompression: RamdiskCompression;
  /** What the FIT holds as its kernel, and how it is compressed. */
  fitKernel: { data: Uint8Array; compression: FitCompression };
  dtb: Uint8Array;
  kernel: BoardKernel;
  modules: string[];
  timestamp: number;
  keyName: string;
  bootJsBytes: number;
  /** What the FIT's signed `signet,tcb` record says it is made of (sdk/disk/boot-tcb). */
  tcb: BootTcbRecord;
}

export function sourceDateEpoch(): number | undefined {
  const v = process.env.SOURCE_DATE_EPOCH;
  return v !== undefined && /^\d{1,10}$/.test(v) ? Number(v) : undefined;
}

const FIT_ARCH: Record<Board['arch'], FitArch> = { arm64: 'arm64', armhf: 'arm' };

/** The initramfs for a board: boot stage with root.json compiled in, plus the block and network drivers. */
export async function buildBoardInitramfs(board: Board, kernel: BoardKernel, rootJson: string, testMode: boolean, mtime: number,
  boot?: Pick<BootBuildOptions, 'fitKey' | 'bootRelease'>): Promise<{ initramfs: Uint8Array; modules: string[]; bootJsBytes: number }> {
  const stage = await buildBootStage({ board, rootJson, testMode, ...boot });
  const kvm = board.hypervisor === 'kvm';
  const modules = kvm ? kernelModules(kernel, [...KVM_BLOCK_MODULES, ...KVM_NET_MODULES]) : [];
  // The guest brings up its NIC itself: virtio-net on kvm, the passed-through virtio-mmio NIC on a
  // Xen board built from source (xen-net.ts); without a NIC (`signet run` without --net) /init says
  // "host[NET] no network" and goes on.
  const network = kvm || xenHasNetwork(board) ? networkConfLine(board) : undefined;
  const initramfs = await buildInitramfs({ arch: board.arch, bootJs: stage.code, modules, mtime, network });
  return { initramfs, modules: modules.map((m) => m.name), bootJsBytes: stage.code.length };
}

/**
 * The kernel as the FIT stores it; U-Boot unpacks it to loadAddresses.kernel. arm64 built from
 * source: the Image gzip'd by libdeflate -12 (1.84 MB for the 5.2 MB Image, against 1.91 MB with
 * GNU gzip -9 and 1.40 MB with lzma). U-Boot's LZMA decoder took 0.4-0.6 s of the boot under
 * emulation against 0.07-0.1 s to inflate: most of what separated the minimal chain from half of
 * Debian's (docs/kernel.md "Where the time goes"). Its CONFIG_SYS_BOOTM_LEN, which bounds what
 * bootm unpacks, lets it inflate Debian's 27 MB Image, far more than checkLoadLayout leaves a
 * minimal kernel. Debian's binary Image: gzip'd (its own bytes when its vmlinuz already is gzip),
 * as before. armhf: the zImage as it is.
 */
export async function fitKernelImage(board: Board, kernel: BoardKernel): Promise<{ data: Uint8Array; compression: FitCompression }> {
  if (board.arch !== 'arm64') return { data: kernel.kernel, compression: 'none' };
  if (isGzip(kernel.kernel)) return { data: kernel.kernel, compression: 'gzip' };
  if (kernel.source === 'debian-source') return { data: await gzipSmallestDeterministic(kernel.kernel), compression: 'gzip' };
  return { data: await gzipDeterministic(kernel.kernel), compression: 'gzip' };
}

export type RamdiskCompression = 'zstd' | 'xz' | 'gzip' | 'none';

/**
 * How the FIT's ramdisk is packed: gzip when the kernel unpacks it (Debian's kernels, as before),
 * else zstd when the kernel unpacks that (qemu-virt-arm64's fragment: 13 % smaller than gzip -9,
 * and unpacked with about a quarter of xz's instructions), else xz (a fragment that chose xz for
 * size alone), else the cpio as it is.
 */
export function ramdiskCompression(kernel: BoardKernel): RamdiskCompression {
  if (kernelConfigValue(kernel.config, 'CONFIG_RD_GZIP') === 'y') return 'gzip';
  if (kernelConfigValue(kernel.config, 'CONFIG_RD_ZSTD') === 'y') return 'zstd';
  if (kernelConfigValue(kernel.config, 'CONFIG_RD_XZ') === 'y') return 'xz';
  return 'none';
}

const PACK_RAMDISK: Record<Exclude<RamdiskCompression, 'none'>, (data: Uint8Array) => Promise<Uint8Array>> = {
  zstd: zstdDeterministic,
  xz: xzDeterministic,
  gzip: gzipDeterministic,
};

/**
 * The FIT's ramdisk: the initramfs zstd'd, xz'd or gzip'd (ramdiskCompression), with zero bytes up to a
 * multiple of 4 so that another cpio archive may follow it (the kernel skips zeros between
 * archives, and wants each uncompressed one 4-byte aligned; xen-flash.ts appends one; an xz
 * stream is a multiple of 4 already). Otherwise the cpio as it is.
 */
export async function fitRamdisk(kernel: BoardKernel, initramfs: Uint8Array): Promise<Uint8Array> {
  const how = ramdiskCompression(kernel);
  if (how === 'none') return initramfs;
  const packed = await PACK_RAMDISK[how](initramfs);
  const out = new Uint8Array(Math.ceil(packed.length / 4) * 4);
  out.set(packed);
  return out;
}

/** ARM64 Image header (Documentation/arch/arm64/booting.rst): image_size, 0 on kernels before 3.17. */
function arm64ImageSize(image: Uint8Array): number {
  if (image.length < 64 || image[56] !== 0x41 || image[57] !== 0x52 || image[58] !== 0x4d || image[59] !== 0x64) return image.length;
  const v = new DataView(image.buffer, image.byteOffset, 64).getBigUint64(16, true);
  return v === 0n ? image.length : Math.max(image.length, Number(v));
}

/** Room U-Boot may give the device tree beyond its size (CONFIG_SYS_FDT_PAD is 0x3000); generous. */
const FDT_ROOM = 0x10000;

/**
 * What sits in RAM when U-Boot starts the kernel must not overlap: the kernel as it runs (an
 * arm64 Image inflated, with its BSS: the header's image_size), the ramdisk, the device tree and
 * the FIT itself (bootm reads images out of it while placing them).
 */
export function checkLoadLayout(board: Board, sizes: { kernel: number; ramdisk: number; fdt: number; fit: number }): void {
  const a = board.loadAddresses;
  const regions = [
    { what: 'the kernel (as it runs)', key: 'kernel', start: Number.parseInt(a.kernel, 16), size: sizes.kernel },
    { what: 'the ramdisk', key: 'ramdisk', start: Number.parseInt(a.ramdisk, 16), size: sizes.ramdisk },
    { what: 'the device tree', key: 'fdt', start: Number.parseInt(a.fdt, 16), size: sizes.fdt + FDT_ROOM },
    { what: 'the FIT', key: 'fit', start: Number.parseInt(a.fit, 16), size: sizes.fit },
  ];
  const hex = (n: number) => '0x' + n.toString(16);
  for (let i = 0; i < regions.length; i++) {
    for (let j = i + 1; j < regions.length; j++) {
      const x = regions[i]!, y = regions[j]!;
      if (x.start < y.start + y.size && y.start < x.start + x.size) {
        throw new DiskError(
          'E_LOAD_OVERLAP',
          `board ${board.id}: ${x.what} at ${hex(x.start)}..${hex(x.start + x.size)} overlaps ${y.what} at ${hex(y.start)}..${hex(y.start + y.size)}`,
          `move loadAddresses.${x.key} or loadAddresses.${y.key} in boards/${board.id}/board.json`,
        );
      }
    }
  }
}

export async function buildBootImage(o: BootImageOptions): Promise<BootImage> {
  try {
    const rootPath = join(o.keysDir, 'root.json');
    // Fail early on a root that would leave every device in recovery.
    loadTrustedRootFile(rootPath, nodeCrypto, Math.floor(Date.now() / 1000));
    const rootJson = new TextDecoder().decode(readInputFile(rootPath, MAX_ROOT_BYTES, 'root metadata file (root.json)'));
    const signer = await loadFitSigner(o.keysDir, undefined, o.fitKey);
    const kernel = await fetchKernel(o.board);
    const timestamp = o.timestamp ?? sourceDateEpoch() ?? kernel.sourceDateEpoch;
    // The boot stage's OTA agent checks boot images against the FIT key and says which release it is.
    const { initramfs, modules, bootJsBytes } = await buildBoardInitramfs(o.board, kernel, rootJson, o.testMode ?? false, timestamp,
      { fitKey: { keyName: FIT_KEY_NAME, publicKey: signer.publicKey() }, bootRelease: o.release });
    const [fitKernel, ramdisk] = await Promise.all([fitKernelImage(o.board, kernel), fitRamdisk(kernel, initramfs)]);
    const dtb = kernelDtb(await dumpMachineDtb(o.board), o.board.kernel.cmdline ?? `console=${o.board.kernel.console}`);
    const native = await nativeHostTcb(await buildNativeHost(o.board.arch));
    const tcb = buildBootTcb({ board: o.board, kernel, fitKernel, initramfs, ramdisk, dtb, native });
    const a = o.board.loadAddresses;
    const fit = buildFit({
      description: `Signet boot image for ${o.board.id} (Linux ${kernel.version})`,
      arch: FIT_ARCH[o.board.arch],
      timestamp,
      kernel: { data: fitKernel.data, compression: fitKernel.compression, description: `Linux ${kernel.version}`, loadAddress: BigInt(a.kernel), entryAddress: BigInt(a.kernel) },
      ramdisk: { data: ramdisk, description: ramdisk === initramfs ? 'Signet initramfs' : `Signet initramfs (${ramdiskCompression(kernel)})`, loadAddress: BigInt(a.ramdisk) },
      fdt: { data: dtb, description: `${o.board.id} device tree`, loadAddress: BigInt(a.fdt) },
      keyName: FIT_KEY_NAME,
      signer,
      rootProperties: [
        { name: BOOT_TCB_PROPERTY, value: await encodeBootTcb(tcb) },
        ...(o.release ? bootReleaseProperties({ board: o.board.id, ...o.release }) : []),
      ],
    });
    const kernelSize = o.board.arch === 'arm64' ? arm64ImageSize(kernel.kernel) : kernel.kernel.length;
    checkLoadLayout(o.board, { kernel: kernelSize, ramdisk: ramdisk.length, fdt: dtb.length, fit: fit.length });
    return { fit, keyDtb: publicKeyDtb(signer.publicKey(), FIT_KEY_NAME), initramfs, ramdisk, ramdiskCompression: ramdiskCompression(kernel), fitKernel, dtb, kernel, modules, timestamp, keyName: FIT_KEY_NAME, bootJsBytes, tcb };
  } catch (e) {
    throw asSignetError(e);
  }
}
