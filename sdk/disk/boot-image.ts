/**
 * The boot image (`signet fit`): a U-Boot FIT holding the board's Debian kernel, the Signet
 * initramfs (boot stage + trust anchor) and the machine's device tree, with its one configuration
 * signed sha256,rsa2048 by `<keys>/fit.key`; plus the public-key DTB to bake into U-Boot
 * (`/signature/key-fit`, `required = "conf"`).
 *
 * Deterministic: the FIT timestamp is SOURCE_DATE_EPOCH when set, else the kernel package's own
 * build time, and every other input is content; two builds give identical bytes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bootConfig } from '../../bootloader/build';
import { bundleService } from '../build/bundle';
import { sdkRoot } from '../util/paths';
import type { Board } from '../board';
import { buildFit, type FitArch } from '../fit/fit';
import { publicKeyDtb } from '../fit/keydtb';
import { nodeCrypto } from '../image/crypto-node';
import { loadTrustedRootFile } from '../ota/root-file';
import { asSignetError } from './errors';
import { FIT_KEY_NAME, loadFitSigner } from './fit-key';
import { buildInitramfs } from './initramfs';
import { fetchKernel, kernelModules, KVM_BLOCK_MODULES, type BoardKernel } from './kernel';
import { dumpMachineDtb, kernelDtb } from './qemu';

export interface BootImageOptions {
  board: Board;
  /** Folder from `signet keys init`: root.json (trust anchor) and fit.key (FIT signing key). */
  keysDir: string;
  /** Compile test mode into the boot stage: the guest powers off after the app. */
  testMode?: boolean;
  /** FIT timestamp; default SOURCE_DATE_EPOCH, else the kernel package's build time. */
  timestamp?: number;
}

export interface BootImage {
  fit: Uint8Array;
  /** /signature/key-fit alone, to merge into U-Boot's control DTB. */
  keyDtb: Uint8Array;
  initramfs: Uint8Array;
  dtb: Uint8Array;
  kernel: BoardKernel;
  modules: string[];
  timestamp: number;
  keyName: string;
  bootJsBytes: number;
}

export function sourceDateEpoch(): number | undefined {
  const v = process.env.SOURCE_DATE_EPOCH;
  return v !== undefined && /^\d{1,10}$/.test(v) ? Number(v) : undefined;
}

const FIT_ARCH: Record<Board['arch'], FitArch> = { arm64: 'arm64', armhf: 'arm' };

/**
 * The boot-stage bundle, as bootloader/build.ts buildBootStage() makes it, but with the sources
 * found from the SDK root: that function locates them from its own import.meta.url, which in
 * the bundled CLI (dist/chunks/) points into dist/.
 */
async function bootStageBundle(board: Board, rootJson: string, testMode: boolean): Promise<{ code: string }> {
  return bundleService({
    projectDir: join(sdkRoot(), 'bootloader'),
    entry: join('src', 'device-main.ts'),
    engine: 'duktape-es5',
    typecheck: false, // the repository's own type check covers this code
    define: { __SIGNET_BOOT_CONFIG__: JSON.stringify(bootConfig({ board, rootJson, testMode })) },
  });
}

/** The initramfs for a board: boot stage with root.json compiled in, plus the block drivers. */
export async function buildBoardInitramfs(board: Board, kernel: BoardKernel, rootJson: string, testMode: boolean, mtime: number): Promise<{ initramfs: Uint8Array; modules: string[]; bootJsBytes: number }> {
  const stage = await bootStageBundle(board, rootJson, testMode);
  const modules = board.hypervisor === 'kvm' ? kernelModules(kernel, KVM_BLOCK_MODULES) : [];
  const initramfs = await buildInitramfs({ arch: board.arch, bootJs: stage.code, modules, mtime });
  return { initramfs, modules: modules.map((m) => m.name), bootJsBytes: stage.code.length };
}

export async function buildBootImage(o: BootImageOptions): Promise<BootImage> {
  try {
    const rootPath = join(o.keysDir, 'root.json');
    // Fail early on a root that would leave every device in recovery.
    loadTrustedRootFile(rootPath, nodeCrypto, Math.floor(Date.now() / 1000));
    const rootJson = readFileSync(rootPath, 'utf8');
    const signer = await loadFitSigner(o.keysDir);
    const kernel = await fetchKernel(o.board);
    const timestamp = o.timestamp ?? sourceDateEpoch() ?? kernel.sourceDateEpoch;
    const { initramfs, modules, bootJsBytes } = await buildBoardInitramfs(o.board, kernel, rootJson, o.testMode ?? false, timestamp);
    const dtb = kernelDtb(await dumpMachineDtb(o.board), o.board.kernel.cmdline ?? `console=${o.board.kernel.console}`);
    const a = o.board.loadAddresses;
    const fit = buildFit({
      description: `Signet boot image for ${o.board.id} (Linux ${kernel.version})`,
      arch: FIT_ARCH[o.board.arch],
      timestamp,
      kernel: { data: kernel.kernel, description: `Linux ${kernel.version}`, loadAddress: BigInt(a.kernel), entryAddress: BigInt(a.kernel) },
      ramdisk: { data: initramfs, description: 'Signet initramfs', loadAddress: BigInt(a.ramdisk) },
      fdt: { data: dtb, description: `${o.board.id} device tree`, loadAddress: BigInt(a.fdt) },
      keyName: FIT_KEY_NAME,
      signer,
    });
    return { fit, keyDtb: publicKeyDtb(signer.publicKey(), FIT_KEY_NAME), initramfs, dtb, kernel, modules, timestamp, keyName: FIT_KEY_NAME, bootJsBytes };
  } catch (e) {
    throw asSignetError(e);
  }
}
