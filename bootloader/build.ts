/**
 * Build the boot-stage bundle for a board: bootloader/src/device-main.ts lowered to ES5 by the
 * SDK's build pipeline, with the board's layout and the trust anchor compiled in.
 */
import { join } from 'node:path';
import { bundleService, type BundleModule } from '../sdk/build/bundle';
import { partition, type Board } from '../sdk/board';
import { abLayout } from '../sdk/disk/boot-ab';
import { sdkRoot } from '../sdk/util/paths';
import type { BootConfig } from './src/config';

/**
 * The boot stage's sources, found from the SDK root rather than from this module's own URL:
 * bundled (the CLI in dist/chunks/, a benchmark in bench/out/) that URL points elsewhere.
 */
export function bootloaderDir(): string {
  return join(sdkRoot(), 'bootloader');
}
export const DEFAULT_TRIAL_TRIES = 3;

export interface BootBuildOptions {
  board: Board;
  /** root.json text (the TUF root envelope) to trust. */
  rootJson: string;
  testMode?: boolean;
  trialTries?: number;
  /** Override the flash device path (default: the board's). */
  device?: string;
  /** The FIT public key the boot images of this board are signed with: the OTA agent checks boot images with it. */
  fitKey?: { keyName: string; publicKey: { modulus: Uint8Array; exponent: Uint8Array } };
  /** The boot image this stage goes into, as an OTA release (`signet fit --version`): printed at boot. */
  bootRelease?: { version: string; securityCounter: number };
}

const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

export function bootConfig(o: BootBuildOptions): BootConfig {
  const p = (name: string) => {
    const x = partition(o.board, name);
    return { offset: x.offset, size: x.size };
  };
  const ab = abLayout(o.board);
  return {
    ...(ab ? { bootenv: ab.bootenv, bootSlots: { boot_a: ab.boot_a, boot_b: ab.boot_b } } : {}),
    ...(o.fitKey ? { fitKeys: [{ keyName: o.fitKey.keyName, modulus: hexOf(o.fitKey.publicKey.modulus), exponent: hexOf(o.fitKey.publicKey.exponent) }] } : {}),
    ...(o.bootRelease ? { bootRelease: { version: o.bootRelease.version, securityCounter: o.bootRelease.securityCounter } } : {}),
    board: o.board.id,
    device: o.device ?? o.board.flash.device,
    sectorSize: o.board.flash.blockSize,
    ...(o.board.flash.eraseBlockSize ? { eraseBlockSize: o.board.flash.eraseBlockSize } : {}),
    partitions: { slot_a: p('slot_a'), slot_b: p('slot_b'), state: p('state') },
    root: o.rootJson,
    trialTries: o.trialTries ?? DEFAULT_TRIAL_TRIES,
    testMode: o.testMode ?? false,
  };
}

export interface BootBundle {
  code: string;
  modules: BundleModule[];
  config: BootConfig;
}

export async function buildBootStage(o: BootBuildOptions): Promise<BootBundle> {
  const config = bootConfig(o);
  const r = await bundleService({
    projectDir: bootloaderDir(),
    entry: join('src', 'device-main.ts'),
    engine: 'duktape-es5',
    typecheck: false, // the repository's own type check covers this code
    define: { __SIGNET_BOOT_CONFIG__: JSON.stringify(config) },
  });
  return { code: r.code, modules: r.modules, config };
}
