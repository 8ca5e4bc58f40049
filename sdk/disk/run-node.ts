/**
 * `signet run --engine node`: the boot stage's own verification (bootloader/src/stage.ts: board,
 * signatures against the root, security counters, A/B and trial state, on the disk file as the
 * device would) and then the chosen image's app bundle under Node, with the same runtime API:
 * no `uv` in `__signet_host`, so the runtime runs over node:net/node:dgram/node:tls, and config
 * backs onto SIGNET_CONFIG_FILE. The log lines are the device's (`boot[...]`, the app's own,
 * `host[ERROR] uncaught ... at src/main.ts:N` through the image's line table).
 *
 * Ports map directly, onto this machine's loopback: a listen on 0.0.0.0:P (or ::) is a listen on
 * 127.0.0.1:P (::1); QEMU's gateway address 10.0.2.2 (how a guest reaches its host) is 127.0.0.1.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInThisContext } from 'node:vm';
import { PartitionDevice } from '../../bootloader/src/block';
import { FileBlockDevice } from '../../bootloader/src/block-file';
import { errorCode } from '../../bootloader/src/errors';
import { BootStage } from '../../bootloader/src/stage';
import { partition, type Board } from '../board';
import { LINE_TABLE_PAYLOAD, lookupLine, parseLineTable, type LineTable } from '../build/linetable';
import { nodeCrypto } from '../image/crypto-node';
import { verifyTrustedRoot } from '../ota/metadata';
import type { UvBinding } from '../runtime/binding';
import { nodeBinding } from '../runtime/node-binding';
import { utf8Decode } from '../util/bytes';
import { DiskError } from './errors';

const DEFAULT_TRIAL_TRIES = 3;
/** The guest's view of its host on QEMU's user network. */
const QEMU_GATEWAY = '10.0.2.2';

export interface NodeEngineOptions {
  board: Board;
  disk: string;
  /** Folder holding root.json, the trust anchor the device's boot stage has compiled in. */
  keysDir: string;
  log: (line: string) => void;
}

export interface NodeEngineRun {
  /** 'recovery': nothing verified, no app ran. */
  status: 'serving' | 'recovery' | 'app-error';
}

/** Listens on loopback only; the host's gateway address is loopback. */
export function loopbackBinding(b: UvBinding): UvBinding {
  const listenHost = (h: string) => (h === '0.0.0.0' || h === '' ? '127.0.0.1' : h === '::' ? '::1' : h);
  const peerHost = (h: string) => (h === QEMU_GATEWAY ? '127.0.0.1' : h);
  return Object.assign(Object.create(b) as UvBinding, {
    tcpListen: (handler: Parameters<UvBinding['tcpListen']>[0], host: string, port: number, backlog: number) => b.tcpListen(handler, listenHost(host), port, backlog),
    tcpConnect: (handler: Parameters<UvBinding['tcpConnect']>[0], host: string, port: number) => b.tcpConnect(handler, peerHost(host), port),
    // Datagrams from the host come back from 127.0.0.1; the guest asked 10.0.2.2, and QEMU's user
    // network shows them from there too (a resolver only trusts the server it asked).
    udpBind: (handler: Parameters<UvBinding['udpBind']>[0], host: string, port: number) =>
      b.udpBind((event, a, from, c) => handler(event, a, event === 'message' && from === '127.0.0.1' ? QEMU_GATEWAY : from, c), listenHost(host), port),
    udpSend: (id: number, bytes: Uint8Array, host: string, port: number) => b.udpSend(id, bytes, peerHost(host), port),
  });
}

function lineTableOf(payloads: { name: string; bytes: Uint8Array }[]): LineTable | null {
  const p = payloads.find((x) => x.name === LINE_TABLE_PAYLOAD);
  const text = p ? utf8Decode(p.bytes) : null;
  return text === null ? null : parseLineTable(text);
}

/** `file:line` of an error thrown in app.js, through the line table when there is one. */
export function whereInApp(e: unknown, table: LineTable | null): string {
  const stack = e instanceof Error && typeof e.stack === 'string' ? e.stack : '';
  const m = /app\.js:(\d+)/.exec(stack);
  if (!m) return '';
  const line = Number(m[1]);
  return (table ? lookupLine(table, line) : null) || 'app.js:' + line;
}

export function runImageOnNode(o: NodeEngineOptions): NodeEngineRun {
  const rootText = readFileSync(join(o.keysDir, 'root.json'));
  let root;
  try {
    root = verifyTrustedRoot(new Uint8Array(rootText), nodeCrypto, null);
  } catch (e) {
    o.log('boot[RECOVERY] reason=E_ROOT what=root detail=' + errorCode(e));
    return { status: 'recovery' };
  }
  let disk: FileBlockDevice;
  try {
    disk = new FileBlockDevice(o.disk, o.board.flash.blockSize, true, o.board.flash.eraseBlockSize);
  } catch (e) {
    throw new DiskError('E_DISK_NOT_A_DISK', `cannot open ${o.disk} as the device's flash: ${(e as Error).message}`, 'give the disk image `signet disk` wrote', e);
  }
  const part = (name: string) => {
    const p = partition(o.board, name);
    return new PartitionDevice(disk, p.offset, p.size);
  };
  const stage = new BootStage({
    slots: { a: part('slot_a'), b: part('slot_b') },
    state: part('state'),
    root,
    board: o.board.id,
    crypto: nodeCrypto,
    now: () => Math.floor(Date.now() / 1000),
    log: o.log,
    trialTries: DEFAULT_TRIAL_TRIES,
  });
  const choice = stage.boot();
  if (!choice) return { status: 'recovery' };
  const source = utf8Decode(choice.app);
  if (source === null) {
    o.log('boot[APP-ERROR] slot=' + choice.slot + ' reason=E_APP_ENCODING');
    return { status: 'app-error' };
  }
  const table = lineTableOf(choice.image.payloads);
  const uv = nodeBinding();
  (globalThis as { __signet_host?: unknown }).__signet_host = {
    board: o.board.id,
    version: choice.image.manifest.version,
    log: o.log,
    confirm: () => stage.confirm(),
    exit: (code: number) => {
      o.log('boot[APP-EXIT] code=' + code);
      process.exit(code === 0 ? 0 : 1);
    },
    ...(uv ? { uv: loopbackBinding(uv) } : {}),
  };
  // Like the device host outside the boot stage's restarts: report a throwing handler with the
  // service's own line, then stop (no back-off restarts under Node).
  process.on('uncaughtException', (e) => {
    const where = whereInApp(e, table);
    process.stdout.write(`host[ERROR] uncaught in a handler${where ? ' at ' + where : ''}: ${String(e)}\n`);
    process.exit(70);
  });
  try {
    runInThisContext(source, { filename: 'app.js' });
  } catch (e) {
    o.log('boot[APP-ERROR] slot=' + choice.slot + ' reason=' + errorCode(e));
    return { status: 'app-error' };
  }
  return { status: 'serving' };
}
