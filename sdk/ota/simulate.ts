/**
 * `signet device simulate`: a simulated device on this machine (the real boot stage over a
 * flash file, the real agent over mutual TLS) that boots, checks in, updates through a trial
 * boot and confirms — what a vendor runs to try a release end to end without hardware.
 */
import { copyFileSync, existsSync, statSync } from 'node:fs';
import { abLayout } from '../disk/boot-ab';
import { requiredConfKeys, type FitVerifyKey } from '../fit/fit-verify';
import { readPublicKeysFromDtb } from '../fit/keydtb';
import { MAX_KEY_DTB_FILE } from '../util/files';
import { join } from 'node:path';
import { partition, type Board } from '../board';
import { readImageFile, verifyImageFile } from '../image/file';
import { SignetError } from '../util/errors';
import { readInputFile } from '../util/files';
import { loadIdentity } from '../keys/device';
import { MAX_ROOT_BYTES } from './root-file';
import type { FlashLayout } from '../../bootloader/src/provision';
import { SimulatedDevice, type BootOutcome } from './device';
import type { UpdateResult } from './agent';

export interface SimulateOptions {
  /** The identity folder from `signet device enroll` (client.crt, client.key, vendor-ca.crt); flash.img lives here too. */
  dir: string;
  board: Board;
  rootPath: string;
  server: string;
  /** Factory image for slot A when the device has no flash yet. */
  factory?: string;
  /** Mirrors for metadata and targets (AgentOptions.mirrors), and the server after them. */
  mirrors?: string[];
  serverFallback?: boolean;
  /**
   * A/B boot slots: the public-key DTB U-Boot holds (`signet disk --key-dtb`). The device's flash
   * is then an A/B disk (`--disk` from `signet disk --boot-ab`), booted through the model of
   * U-Boot's A/B bootcmd, and its agent updates boot images too.
   */
  keyDtb?: string;
  /** On first use: start from this disk image (from `signet disk`) as the device's flash. */
  disk?: string;
  onLine?: (line: string) => void;
}

export interface SimulateResult {
  first: BootOutcome;
  update: UpdateResult;
  after?: BootOutcome;
  lines: string[];
}

export function boardLayout(board: Board): { layout: FlashLayout; bytes: number } {
  const p = (n: string) => {
    const x = partition(board, n);
    return { offset: x.offset, size: x.size };
  };
  const layout = { slot_a: p('slot_a'), slot_b: p('slot_b'), state: p('state') };
  const bytes = Math.max(...Object.values(layout).map((x) => x.offset + x.size));
  return { layout, bytes };
}

export async function simulateDevice(o: SimulateOptions): Promise<SimulateResult> {
  const id = loadIdentity(o.dir);
  // The identity was enrolled for one board; the server would refuse any other (E_DEVICE_BOARD).
  if (id.board !== undefined && id.board !== o.board.id) {
    throw new SignetError('E_DEVICE_BOARD', `${id.id} (${o.dir}) is enrolled for board ${id.board}, not ${o.board.id}`,
      `pass --board ${id.board}, or enroll a device for ${o.board.id}: signet device enroll --id ID --board ${o.board.id}`);
  }
  const { layout, bytes } = boardLayout(o.board);
  const common = {
    dir: o.dir,
    id: id.id,
    board: o.board.id,
    layout,
    rootBytes: readInputFile(o.rootPath, MAX_ROOT_BYTES, 'root metadata file (root.json)'),
    serverUrl: o.server,
    mirrors: o.mirrors,
    serverFallback: o.serverFallback,
    tls: { ca: id.caPem, cert: id.certPem, key: id.keyPem },
  };
  const ab = o.keyDtb !== undefined ? abOptions(o.board, o.keyDtb) : {};
  if (o.disk !== undefined && !existsSync(join(o.dir, 'flash.img'))) {
    // The disk's partitions sit where the board's layout says, so it is the device's flash as it is.
    if (statSync(o.disk).size < bytes) throw new SignetError('E_USAGE', `${o.disk} is smaller than the flash of ${o.board.id}`, 'pass a disk image from `signet disk`');
    copyFileSync(o.disk, join(o.dir, 'flash.img'));
  }
  const fresh = !existsSync(join(o.dir, 'flash.img'));
  let factoryImage: Uint8Array | undefined;
  if (fresh) {
    // The device's own decision on the factory image (root, board, slot size, signatures,
    // expiry) before a byte of flash or TUF state is written: a bad image fails here, with its
    // own code, and leaves the folder as it was.
    const path = requireFactory(o.factory);
    verifyImageFile(path, { rootPath: o.rootPath, board: o.board.id, slotBytes: layout.slot_a.size });
    factoryImage = readImageFile(path, layout.slot_a.size);
  }
  const dev = factoryImage
    ? SimulatedDevice.provision({ ...common, ...ab, factoryImage, flashBytes: bytes })
    : new SimulatedDevice({ ...common, ...ab });
  let shown = 0;
  const flush = () => {
    for (; shown < dev.lines.length; shown++) o.onLine?.(dev.lines[shown]);
  };
  const first = await dev.boot();
  flush();
  if (!first.slot) {
    dev.shutdown();
    throw new SignetError('E_DEVICE_NO_APP', `the simulated device in ${o.dir} has no app that verifies: its boot stage went to recovery`,
      `remove ${join(o.dir, 'flash.img')} and ${join(o.dir, 'tuf')}, then run again with --factory app.simg`);
  }
  const update = await dev.checkForUpdate();
  flush();
  let after: BootOutcome | undefined;
  if (update.outcome === 'staged' || update.boot?.outcome === 'staged') {
    after = await dev.boot(); // the trial boot: the app confirms, the agent reports
    flush();
  }
  dev.shutdown();
  return { first, update, after, lines: dev.lines };
}

/** The A/B layout of the board and the FIT key(s) from U-Boot's public-key DTB. */
function abOptions(board: Board, keyDtb: string): { bootAb: NonNullable<ReturnType<typeof abLayout>>; fitKeys: FitVerifyKey[] } {
  const bootAb = abLayout(board);
  if (!bootAb) throw new SignetError('E_USAGE', `board ${board.id} has no room for A/B boot slots`, 'simulate it without --key-dtb');
  const fitKeys = requiredConfKeys(readPublicKeysFromDtb(readInputFile(keyDtb, MAX_KEY_DTB_FILE, 'U-Boot public-key DTB')));
  if (!fitKeys.length) throw new SignetError('E_USAGE', `${keyDtb} holds no key with required = "conf"`, 'pass the DTB `signet disk --key-dtb` wrote');
  return { bootAb, fitKeys };
}

function requireFactory(p: string | undefined): string {
  if (!p) throw new SignetError('E_USAGE', 'this device has no flash yet and no --factory image was given', 'pass --factory app.simg for its first boot');
  return p;
}
