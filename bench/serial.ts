/**
 * Our YMODEM sender against lrzsz `sb`, same file, same run.
 *
 * The figure that matters to users: into the board's own receiver, real U-Boot 2023.01's `loady`
 * (Debian's qemu_arm64 build in QEMU, tests/helpers/uboot-rig.ts), over the same emulated UART,
 * both senders on the same tty (socat wires it to the board's console socket, as a USB serial
 * adapter would be). Each round: `loady` typed at the prompt, then the sender runs, timed from
 * its start to its end; the RAM is then checked with `crc32`. Rounds alternate, best of each.
 *
 * serial.vs_sb_uboot   our throughput ÷ sb's (`sb -k`, 1 K blocks) into U-Boot loady (goal ≥ 1.0)
 * serial.ours_uboot_KBps, serial.sb_uboot_KBps   the two throughputs
 *
 * Secondary, into lrzsz `rb` over a pty pair (socat). Ptys have no baud limit, so this measures
 * protocol turnaround and per-block cost, not a UART; rb purges its input after each answer, so
 * a sender quicker than that purge loses frames (ours backs off: ymodem.ts turnaround guard).
 *
 * serial.vs_lrzsz      effective throughput of our sender ÷ that of `sb -k` (1 K blocks) for a
 *                      2 MiB file, each timed from rb's start to rb's exit (rb's own fixed
 *                      ~2.5 s of 1 s timeouts included), same link, best of 3 alternating
 *                      rounds (goal ≥ 1.0)
 * serial.ours_MBps     our effective throughput in our best round
 * serial.sb_MBps       sb's effective throughput in its best round
 * serial.efficiency    payload bytes ÷ bytes our sender wrote on the wire (block 0, framing,
 *                      padding, EOT, retransmissions) in that round
 *
 * Needs Debian packages lrzsz and socat.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBoard } from '../sdk/board';
import { parseCrc32Output } from '../sdk/flash/flasher';
import { fastCrc32 } from '../sdk/flash/flasher-plan';
import { openTransport } from '../sdk/flash/transport';
import { UbootConsole } from '../sdk/flash/uboot';
import { openPtyBridge, openPtyPair, spawnOnTty, type PtyPair } from '../tests/helpers/pty-pair';
import { UbootRig } from '../tests/helpers/uboot-rig';
import { sendYmodem, type YmodemSendResult } from '../sdk/flash/ymodem';
import type { Figures } from './_lib';

const FILE_BYTES = 2 * 1024 * 1024;
const ROUNDS = 3;
const UBOOT_FILE_BYTES = 384 * 1024;
const UBOOT_ROUNDS = 3;
const LOAD_ADDRESS = 0x50000000n;
const NAME = 'image.bin';
const ROUND_LIMIT_MS = 120_000; // liveness bound only

/**
 * lrzsz purges its input right after writing each ACK. On a pty a sender can answer before
 * that purge when rb is preempted in between (two CPUs, socat and the sender waking up), and
 * the block is lost: rb waits 5 s and NAKs. Both senders suffer it alike, at random, and it
 * would decide the figure, so rb runs at a higher priority when we may raise it (root).
 */
const RB = process.getuid?.() === 0 ? ['nice', '-n', '-15', 'rb', '-q'] : ['rb', '-q'];

interface Round {
  /** rb's start to rb's exit; Infinity when the round did not finish. */
  seconds: number;
  result?: YmodemSendResult;
}

interface Sender {
  done: Promise<YmodemSendResult | void>;
  /** Stops the sender once rb is gone (sb can wait long for a final ACK that rb lost). */
  stop: () => Promise<void>;
}

async function receiveWithRb(pair: PtyPair, root: string, label: string, data: Uint8Array, start: () => Sender): Promise<Round> {
  const rx = join(root, label);
  mkdirSync(rx);
  const started = process.hrtime.bigint();
  const rb = spawnOnTty(RB[0]!, RB.slice(1), pair.device, rx);
  const rbDone = rb.exited.then((exit) => ({ exit, seconds: Number(process.hrtime.bigint() - started) / 1e9 }));
  const sender = start();
  const senderDone = sender.done.then(
    (result) => ({ result: result ?? undefined, error: undefined }),
    (error: unknown) => ({ result: undefined, error }),
  );
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ROUND_LIMIT_MS);
  });
  const received = await Promise.race([rbDone, limit]);
  clearTimeout(timer);
  if (!received) {
    await rb.kill();
    await sender.stop();
    await senderDone;
    return { seconds: Infinity };
  }
  // rb has everything once it exits; give the sender a moment for the closing handshake.
  const sent = await Promise.race([senderDone, new Promise<undefined>((r) => setTimeout(() => r(undefined), 3_000))]);
  if (!sent) await sender.stop();
  if (received.exit.code !== 0) throw new Error(`rb failed in ${label} (exit ${received.exit.code}): ${received.exit.stderr.trim()}`);
  if (Buffer.compare(readFileSync(join(rx, NAME)), data) !== 0) throw new Error(`rb received a different file in ${label}`);
  return { seconds: received.seconds, result: sent?.result };
}

/** One round into U-Boot's loady: seconds from the sender's start to its end, RAM checked after. */
async function intoLoady(tty: string, data: Uint8Array, source: string, sender: 'ours' | 'sb'): Promise<number> {
  let link = await openTransport(tty, { baud: 115200 });
  let uboot = new UbootConsole(link, { prompt: '=> ' });
  let seconds: number;
  try {
    await uboot.attach();
    const loady = await uboot.start(`loady ${'0x' + LOAD_ADDRESS.toString(16)}`);
    if (sender === 'ours') {
      const t0 = process.hrtime.bigint();
      await sendYmodem(link, { name: NAME, data }, { startTimeoutMs: 15_000, responseTimeoutMs: 5_000, headerGraceMs: 50 });
      seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      await loady.finish(30_000, { allowFailure: true });
    } else {
      await link.close(); // sb has the tty to itself
      const t0 = process.hrtime.bigint();
      const sb = spawnOnTty('sb', ['-q', '-k', NAME], tty, source);
      const timer = setTimeout(() => void sb.kill(), ROUND_LIMIT_MS);
      const exit = await sb.exited;
      clearTimeout(timer);
      seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (exit.code !== 0) throw new Error(`sb failed into U-Boot loady (exit ${exit.code}): ${exit.stderr.trim()}`);
      link = await openTransport(tty, { baud: 115200 });
      uboot = new UbootConsole(link, { prompt: '=> ' });
      await uboot.attach();
    }
    const r = await uboot.run(`crc32 ${'0x' + LOAD_ADDRESS.toString(16)} ${'0x' + data.length.toString(16)}`);
    if (parseCrc32Output(r.output, LOAD_ADDRESS, data.length) !== fastCrc32(data)) throw new Error(`U-Boot's RAM does not hold the file after ${sender}'s transfer`);
  } finally {
    await link.close().catch(() => undefined);
  }
  return seconds;
}

async function ubootFigures(root: string, source: string, data: Uint8Array): Promise<Figures> {
  const rig = await UbootRig.start({ board: loadBoard('qemu-virt-arm64') });
  const bridge = await openPtyBridge(mkdtempSync(join(root, 'tty-')), rig.address.slice('unix:'.length));
  try {
    const ours: number[] = [];
    const sb: number[] = [];
    for (let round = 0; round < UBOOT_ROUNDS; round++) {
      ours.push(await intoLoady(bridge.path, data, source, 'ours'));
      sb.push(await intoLoady(bridge.path, data, source, 'sb'));
    }
    const oursRate = data.length / Math.min(...ours);
    const sbRate = data.length / Math.min(...sb);
    return {
      vs_sb_uboot: { value: oursRate / sbRate, unit: 'ratio' },
      ours_uboot_KBps: { value: oursRate / 1e3, unit: 'kB/s' },
      sb_uboot_KBps: { value: sbRate / 1e3, unit: 'kB/s' },
    };
  } finally {
    await bridge.close();
    await rig.stop();
    rig.cleanup();
  }
}

export async function run(): Promise<Figures> {
  const uroot = mkdtempSync(join(tmpdir(), 'signet-bench-serial-uboot-'));
  let uboot: Figures;
  try {
    const data = randomBytes(UBOOT_FILE_BYTES);
    const source = join(uroot, 'src');
    mkdirSync(source);
    writeFileSync(join(source, NAME), data);
    uboot = await ubootFigures(uroot, source, data);
  } finally {
    rmSync(uroot, { recursive: true, force: true });
  }
  return { ...uboot, ...(await ptyFigures()) };
}

async function ptyFigures(): Promise<Figures> {
  const root = mkdtempSync(join(tmpdir(), 'signet-bench-serial-'));
  const pair = await openPtyPair(root);
  try {
    const data = randomBytes(FILE_BYTES);
    const source = join(root, 'src');
    mkdirSync(source);
    writeFileSync(join(source, NAME), data);

    const ours: Round[] = [];
    const theirs: Round[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // Our end is opened before rb starts and closed before sb runs: one reader per tty.
      const link = await openTransport(pair.host, { baud: 115200 });
      try {
        ours.push(
          await receiveWithRb(pair, root, `ours-${round}`, data, () => {
            const abort = new AbortController();
            return {
              done: sendYmodem(link, { name: NAME, data }, { signal: abort.signal }),
              stop: async () => abort.abort(),
            };
          }),
        );
      } finally {
        await link.close();
      }
      theirs.push(
        await receiveWithRb(pair, root, `sb-${round}`, data, () => {
          const sb = spawnOnTty('sb', ['-q', '-k', NAME], pair.host, source);
          return { done: sb.exited.then(() => undefined), stop: sb.kill };
        }),
      );
    }
    if (ours.every((r) => r.seconds === Infinity) || theirs.every((r) => r.seconds === Infinity)) {
      throw new Error(`no round finished within ${ROUND_LIMIT_MS} ms for ${ours.every((r) => r.seconds === Infinity) ? 'our sender' : 'sb'}`);
    }
    const bestOurs = ours.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    const bestSb = theirs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    const oursRate = FILE_BYTES / bestOurs.seconds;
    const sbRate = FILE_BYTES / bestSb.seconds;
    const result = bestOurs.result;
    return {
      vs_lrzsz: { value: oursRate / sbRate, unit: 'ratio' },
      ours_MBps: { value: oursRate / 1e6, unit: 'MB/s' },
      sb_MBps: { value: sbRate / 1e6, unit: 'MB/s' },
      efficiency: { value: result ? result.payloadBytes / result.wireBytes : Number.NaN, unit: 'ratio' },
    };
  } finally {
    await pair.close();
    rmSync(root, { recursive: true, force: true });
  }
}
