/**
 * Issue 14's first must-show on real Xen, shared by tests/xen-arm32.test.ts and bench/xen.ts:
 *
 *   1. `signet disk` with v1 (security counter 1) in slot A; v2 (counter 2) staged into slot B
 *      as a trial through the boot stage's install API (`stageImage`, what the OTA agent calls).
 *   2. Xen boot 1 from that disk file: the DomU trial-boots v2, its app confirms, the floor
 *      rises to 2 on the passed-through flash, i.e. in the disk file.
 *   3. The older, validly signed v1 is written back into slot B.
 *   4. Xen boot 2 from the same file: the floor is still 2, so both slots are refused.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Board } from '../../sdk/board';
import { scaffoldProject } from '../../sdk/build/scaffold';
import { buildDisk, flashLayout } from '../../sdk/disk/disk';
import { runXen, type RunXenResult } from '../../sdk/disk/run-xen';
import { nodeCrypto } from '../../sdk/image/crypto-node';
import { buildRelease } from '../../sdk/image/release';
import { initKeys } from '../../sdk/keys/keyset';
import { loadTrustedRootFile } from '../../sdk/ota/root-file';
import { PartitionDevice, readBytes, writeBytesPadded } from '../../bootloader/src/block';
import { FileBlockDevice } from '../../bootloader/src/block-file';
import { BootStage } from '../../bootloader/src/stage';
import { readState, type BootState } from '../../bootloader/src/state';

export const PERSIST_APP = 'xen-persist-svc';

export interface PersistRun {
  diskPath: string;
  /** Boot 1: the trial of v2 and its confirm(). */
  first: RunXenResult;
  /** The disk file's boot state after boot 1 (read on the host). */
  stateAfterFirst: BootState | null;
  /** Boot 2: v1 in both slots. */
  second: RunXenResult;
  stateAfterSecond: BootState | null;
}

interface Parts {
  a: PartitionDevice;
  b: PartitionDevice;
  state: PartitionDevice;
}

function onDisk<T>(board: Board, diskPath: string, use: (p: Parts) => T): T {
  const layout = flashLayout(board);
  const dev = new FileBlockDevice(diskPath, board.flash.blockSize, true, board.flash.eraseBlockSize);
  try {
    const part = (x: { offset: number; size: number }) => new PartitionDevice(dev, x.offset, x.size);
    return use({ a: part(layout.slot_a), b: part(layout.slot_b), state: part(layout.state) });
  } finally {
    dev.close();
  }
}

export async function xenPersistScenario(board: Board, dir: string): Promise<PersistRun> {
  const keysDir = join(dir, 'keys');
  await initKeys({ dir: keysDir });
  const projectDir = join(dir, 'svc');
  await scaffoldProject(projectDir, { name: PERSIST_APP, board: board.id }); // its app calls confirm()
  const older = join(dir, 'v1.simg');
  const newer = join(dir, 'v2.simg');
  await buildRelease({ projectDir, version: '1.0.0', securityCounter: 1, keysDir, out: older, typecheck: false });
  await buildRelease({ projectDir, version: '2.0.0', securityCounter: 2, keysDir, out: newer, typecheck: false });
  const diskPath = join(dir, 'disk.img');
  await buildDisk({ board, appImage: older, keysDir, out: diskPath });

  const root = loadTrustedRootFile(join(keysDir, 'root.json'), nodeCrypto, null);
  onDisk(board, diskPath, (p) => {
    const stage = new BootStage({ slots: { a: p.a, b: p.b }, state: p.state, root, board: board.id, crypto: nodeCrypto, now: () => null, log: () => undefined, trialTries: 3 });
    stage.stageImage(new Uint8Array(readFileSync(newer)));
  });

  const first = await runXen({ board, disk: diskPath, halt: true });
  const stateAfterFirst = onDisk(board, diskPath, (p) => readState(p.state).state);

  const olderBytes = new Uint8Array(readFileSync(older));
  onDisk(board, diskPath, (p) => {
    writeBytesPadded(p.b, olderBytes);
    p.b.flush();
    if (readBytes(p.b, 0, olderBytes.length).some((x, i) => x !== olderBytes[i])) throw new Error('slot B does not read back v1');
  });

  const second = await runXen({ board, disk: diskPath, halt: true });
  const stateAfterSecond = onDisk(board, diskPath, (p) => readState(p.state).state);
  return { diskPath, first, stateAfterFirst, second, stateAfterSecond };
}

/** The must-show held: v2 confirmed at floor 2 in boot 1, and in boot 2 both slots refused for rollback. */
export function statePersisted(r: PersistRun): boolean {
  return (
    r.first.lines.includes('boot[CONFIRM] slot=b version=2.0.0 floor=2') &&
    r.stateAfterFirst?.securityFloor === 2 &&
    r.second.lines.includes('boot[FALLBACK] slot=b reason=E_ROLLBACK') &&
    r.second.lines.includes('boot[FALLBACK] slot=a reason=E_ROLLBACK') &&
    !r.second.lines.some((l) => l.startsWith('boot[OK]'))
  );
}
