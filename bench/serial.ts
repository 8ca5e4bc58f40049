/**
 * YMODEM over a pty pair (socat), into lrzsz `rb`, ours against lrzsz `sb` in the same run.
 * Ptys have no baud limit, so this measures protocol turnaround and per-block cost, not a
 * UART: figures are for comparing senders on one machine.
 *
 * serial.vs_lrzsz      effective throughput of our sender ÷ that of `sb -k` (1 K blocks) for a
 *                      3 MiB file, each timed from rb's start to rb's exit (rb's own fixed
 *                      ~2.5 s of 1 s timeouts included), same link, best of 5 alternating
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
import { openPtyPair, spawnOnTty, type PtyPair } from '../tests/helpers/pty-pair';
import { openTransport } from '../sdk/flash/transport';
import { sendYmodem, type YmodemSendResult } from '../sdk/flash/ymodem';
import type { Figures } from './_lib';

const FILE_BYTES = 3 * 1024 * 1024;
const ROUNDS = 5;
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

export async function run(): Promise<Figures> {
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
