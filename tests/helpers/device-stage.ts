/**
 * Puts an app update on a disk file (`signet disk`) exactly as the device's own code would, run on
 * Node over the file instead of inside the guest:
 *
 * - `stageAppOnDisk`: the boot stage's install API (`BootStage.stageImage`, what the OTA agent
 *   calls on the device): the image into the inactive app slot, read back, verified, and a trial
 *   armed in the state partition with `tries` boots.
 *
 * Used where a test is about what happens after the update is armed (a hang), so it
 * need not pay for a download inside the guest.
 */
import { PartitionDevice } from '../../bootloader/src/block';
import { FileBlockDevice } from '../../bootloader/src/block-file';
import { readBootEnv, type BootEnvVars } from '../../bootloader/src/bootenv';
import { BootStage } from '../../bootloader/src/stage';
import type { Board } from '../../sdk/board';
import { partition } from '../../sdk/board';
import type { AbLayout } from '../../sdk/disk/boot-ab';
import { nodeCrypto } from '../../sdk/image/crypto-node';
import { loadTrustedRootFile } from '../../sdk/ota/root-file';

function withDisk<T>(disk: string, board: Board, f: (dev: FileBlockDevice) => T): T {
  const dev = new FileBlockDevice(disk, board.flash.blockSize);
  try {
    return f(dev);
  } finally {
    dev.close();
  }
}

/** Stages `image` (.simg bytes) into the inactive app slot with a trial of `tries` boots; returns the log. */
export function stageAppOnDisk(disk: string, board: Board, rootJson: string, image: Uint8Array, tries: number): string[] {
  const lines: string[] = [];
  withDisk(disk, board, (dev) => {
    const part = (name: string) => {
      const p = partition(board, name);
      return new PartitionDevice(dev, p.offset, p.size);
    };
    const stage = new BootStage({
      slots: { a: part('slot_a'), b: part('slot_b') },
      state: part('state'),
      root: loadTrustedRootFile(rootJson, nodeCrypto, null),
      board: board.id,
      crypto: nodeCrypto,
      now: () => Math.floor(Date.now() / 1000),
      log: (l) => lines.push(l),
      trialTries: tries,
    });
    stage.stageImage(image);
  });
  return lines;
}

/** The boot environment's current copy on an A/B disk (null: neither copy is valid). */
export function readDiskBootEnv(disk: string, board: Board, ab: AbLayout): BootEnvVars | null {
  return withDisk(disk, board, (dev) => readBootEnv(new PartitionDevice(dev, ab.bootenv.offset, ab.bootenv.size)).vars);
}
