/**
 * `signet device simulate`: a simulated device on this machine (the real boot stage over a
 * flash file, the real agent over mutual TLS) that boots, checks in, updates through a trial
 * boot and confirms — what a vendor runs to try a release end to end without hardware.
 */
import { existsSync } from 'node:fs';
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
    ? SimulatedDevice.provision({ ...common, factoryImage, flashBytes: bytes })
    : new SimulatedDevice(common);
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
  if (update.outcome === 'staged') {
    after = await dev.boot(); // the trial boot: the app confirms, the agent reports
    flush();
  }
  dev.shutdown();
  return { first, update, after, lines: dev.lines };
}

function requireFactory(p: string | undefined): string {
  if (!p) throw new SignetError('E_USAGE', 'this device has no flash yet and no --factory image was given', 'pass --factory app.simg for its first boot');
  return p;
}
