/**
 * The YMODEM sender against a model of U-Boot's loady receiver (tests/helpers/uboot-loady.ts,
 * real U-Boot's timings: 2 s per byte, 2 s of quiet line after an error), with one chosen byte
 * damaged, dropped or answer lost. On a noisy line (tests/flash-hardening.test.ts) these are what
 * made a small transfer crawl: a bad block 0 gets no answer from U-Boot, and a resend timed by
 * the sender's own clock landed in the quiet U-Boot waits for, so each try of block 0 cost ~9 s;
 * a closing block 0 that lost a byte ended loady in an error. The options are the ones
 * `signet flash` uses on a line that has shown damage.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { sendYmodem, type YmodemSendOptions } from '../sdk/flash/ymodem';
import { LoadyReceiver } from './helpers/uboot-loady';
import { MockTransport } from './helpers/transport-mock';

const SOH = 0x01;
const ACK = 0x06;

const NOISY_LINE: YmodemSendOptions = {
  startTimeoutMs: 15_000,
  responseTimeoutMs: 8_000,
  headerGraceMs: 50,
  turnaroundGuardUs: 0,
  nudge: { max: 4 },
  maxBlockLength: 128,
  maxRetries: 30,
};

type FrameKind = 'header' | 'end-of-batch' | { block: number } | 'other';

function kindOf(bytes: Uint8Array): FrameKind {
  if (bytes.length !== 133 || bytes[0] !== SOH) return 'other';
  if (bytes[1] !== 0) return { block: bytes[1]! };
  return bytes.subarray(3, 131).every((b) => b === 0) ? 'end-of-batch' : 'header';
}

/**
 * Our sender and the loady model on a mock link. `toBoard(bytes, n)` may change the n-th write
 * (1-based) on its way; `fromBoard(bytes)` what the board answers.
 */
async function transfer(
  data: Uint8Array,
  line: { toBoard?: (bytes: Uint8Array, write: number) => Uint8Array; fromBoard?: (bytes: Uint8Array) => Uint8Array } = {},
) {
  const link = await MockTransport.open('mock:loady');
  let writes = 0;
  const rx = new LoadyReceiver((bytes) => link.emitData(line.fromBoard ? line.fromBoard(bytes) : bytes));
  link.onWrite((bytes) => rx.deliver(line.toBoard ? line.toBoard(bytes, ++writes) : bytes));
  const sent = await sendYmodem(link, { name: 'chunk.bin.gz', data }, NOISY_LINE);
  const received = await rx.done;
  return { sent, received, stats: rx.stats, writes: link.writes };
}

/** The first write that `match` accepts goes through changed by `damage`. */
function once(match: (k: FrameKind) => boolean, damage: (bytes: Uint8Array) => Uint8Array): (bytes: Uint8Array) => Uint8Array {
  let done = false;
  return (bytes) => {
    if (done || !match(kindOf(bytes))) return bytes;
    done = true;
    return damage(bytes);
  };
}

const flip = (at: number) => (bytes: Uint8Array) => {
  const out = bytes.slice();
  out[at] = out[at]! ^ 0x40;
  return out;
};
const drop = (at: number) => (bytes: Uint8Array) => Uint8Array.from([...bytes.subarray(0, at), ...bytes.subarray(at + 1)]);

describe("YMODEM to U-Boot's loady (model) when one thing goes wrong", () => {
  const data = new Uint8Array(randomBytes(600));

  test('block 0 damaged: U-Boot says nothing, and it is sent again while U-Boot still listens (no timeout, no quiet-line wait)', async () => {
    const damage = once((k) => k === 'header', flip(40));
    const r = await transfer(data, { toBoard: (b) => damage(b) });
    expect(r.received.status).toBe('ok');
    expect(Buffer.compare(r.received.data, data)).toBe(0);
    expect(r.stats.crcErrors).toBe(1);
    expect(r.stats).toMatchObject({ huntTimeouts: 0, frameTimeouts: 0, flushedBytes: 0 });
  }, 30_000);

  test('block 0 short of a byte: one filler completes it, and it is sent again at once', async () => {
    const damage = once((k) => k === 'header', drop(70));
    const r = await transfer(data, { toBoard: (b) => damage(b) });
    expect(r.received.status).toBe('ok');
    expect(Buffer.compare(r.received.data, data)).toBe(0);
    expect(r.stats).toMatchObject({ crcErrors: 1, huntTimeouts: 0, frameTimeouts: 0, flushedBytes: 0 });
  }, 30_000);

  test('the ACK of a data block lost: the block is sent again at once, U-Boot ACKs the repeat, and the second ACK is not taken for the next block', async () => {
    let acks = 0;
    const r = await transfer(data, { fromBoard: (b) => (b.length === 1 && b[0] === ACK && ++acks === 3 ? new Uint8Array(0) : b) });
    expect(r.received.status).toBe('ok');
    expect(Buffer.compare(r.received.data, data)).toBe(0);
    expect(r.stats).toMatchObject({ huntTimeouts: 0, frameTimeouts: 0, flushedBytes: 0 });
    expect(r.sent.retransmissions).toBe(1);
  }, 30_000);

  test('the closing block 0 short of a byte: the filler restores it (it is all NULs) and loady ends without an error', async () => {
    const damage = once((k) => k === 'end-of-batch', drop(100));
    const r = await transfer(data, { toBoard: (b) => damage(b) });
    expect(r.received.status).toBe('ok');
    expect(r.stats.frameTimeouts).toBe(0);
  }, 30_000);

  test('a framing error (U-Boot then waits for 2 s of quiet line): after one more try the sender goes quiet until U-Boot asks', async () => {
    const damage = once((k) => typeof k === 'object' && k.block === 2, flip(1));
    const r = await transfer(data, { toBoard: (b) => damage(b) });
    expect(r.received.status).toBe('ok');
    expect(Buffer.compare(r.received.data, data)).toBe(0);
    expect(r.stats.framingErrors).toBe(1);
    // Block 2 went out three times: damaged, once more at once (into the wait), then on U-Boot's request.
    expect(r.writes.filter((w) => kindOf(w) !== 'other' && (kindOf(w) as { block?: number }).block === 2)).toHaveLength(3);
  }, 30_000);
});
