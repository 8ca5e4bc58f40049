import { describe, expect, test } from 'vitest';
import { randomBytes } from 'node:crypto';
import { crc16Xmodem } from '../sdk/flash/crc16';
import { MockTransport } from './helpers/transport-mock';
import { sendYmodem, YmodemError, type YmodemEvent, type YmodemSendOptions } from '../sdk/flash/ymodem';
import {
  ACK,
  CAN,
  CRC_REQUEST,
  EOT,
  NAK,
  SOH,
  STX,
  encodeBlock,
  encodeEndOfBatchBlock,
  encodeHeaderBlock,
} from '../sdk/flash/ymodem-frame';

// ---------------------------------------------------------------------------------------
// A YMODEM receiver played against the sender over the mock link. It parses whatever the
// sender writes (in any chunking), checks CRC/checksum and sequence numbers like a real
// receiver, and answers in the manner of one of the three peers we care about.
// ---------------------------------------------------------------------------------------

type Flavour =
  /** Forsberg's reference: ACK+C after block 0, NAK the first EOT. */
  | 'spec'
  /** lrzsz rb: ACK+C after block 0, ACK the first EOT then C. */
  | 'rb'
  /** U-Boot loady: bare ACK after block 0, 'C' as NAK, EOT -> ACK ACK C. */
  | 'uboot';

type Frame =
  | { kind: 'block'; seq: number; length: 128 | 1024; payload: Uint8Array; intact: boolean }
  | { kind: 'eot' }
  | { kind: 'can' };

type Action = 'nak' | 'cancel' | 'silent' | undefined;

interface ReceiverOptions {
  flavour: Flavour;
  check?: 'crc16' | 'checksum';
  /** Decide a fault for a frame; `attempt` counts transmissions of that same frame. */
  fault?: (frame: Frame, attempt: number, state: { phase: 'header' | 'data'; expected: number }) => Action;
  /** Don't send the opening 'C'/NAK at all. */
  mute?: boolean;
}

class Receiver {
  readonly frames: Frame[] = [];
  readonly files: { name: string; size: number; data: Uint8Array }[] = [];
  batchEnded = false;
  private pending = new Uint8Array(0);
  private phase: 'header' | 'data' = 'header';
  private expected = 1;
  private chunks: Uint8Array[] = [];
  private current: { name: string; size: number } | undefined;
  private eotCount = 0;
  private attempts = new Map<string, number>();
  private readonly crc: boolean;

  constructor(
    private readonly link: MockTransport,
    private readonly options: ReceiverOptions,
  ) {
    this.crc = (options.check ?? 'crc16') === 'crc16';
    link.onWrite((bytes) => this.feed(bytes));
    if (!options.mute) link.emitData([this.crc ? CRC_REQUEST : NAK]);
  }

  private reply(...bytes: number[]): void {
    setImmediate(() => this.link.emitData(bytes));
  }

  private feed(bytes: Uint8Array): void {
    const all = new Uint8Array(this.pending.length + bytes.length);
    all.set(this.pending);
    all.set(bytes, this.pending.length);
    let at = 0;
    const checkLen = this.crc ? 2 : 1;
    while (at < all.length) {
      const b = all[at]!;
      if (b === EOT) {
        this.onFrame({ kind: 'eot' });
        at++;
      } else if (b === CAN) {
        this.onFrame({ kind: 'can' });
        at++;
      } else if (b === SOH || b === STX) {
        const length = b === STX ? 1024 : 128;
        const total = 3 + length + checkLen;
        if (all.length - at < total) break;
        const seq = all[at + 1]!;
        const payload = all.slice(at + 3, at + 3 + length);
        let intact = (seq ^ all[at + 2]!) === 0xff;
        if (this.crc) {
          intact &&= crc16Xmodem(payload) === ((all[at + 3 + length]! << 8) | all[at + 4 + length]!);
        } else {
          intact &&= (payload.reduce((s, x) => s + x, 0) & 0xff) === all[at + 3 + length];
        }
        this.onFrame({ kind: 'block', seq, length, payload, intact });
        at += total;
      } else {
        at++; // backspaces after CAN, noise
      }
    }
    this.pending = all.slice(at);
  }

  private onFrame(frame: Frame): void {
    this.frames.push(frame);
    if (frame.kind === 'can') return;
    const key = frame.kind === 'eot' ? `eot` : `${this.phase}:${frame.seq}:${this.files.length}:${this.expected}`;
    const attempt = (this.attempts.get(key) ?? 0) + 1;
    this.attempts.set(key, attempt);
    const action = this.options.fault?.(frame, attempt, { phase: this.phase, expected: this.expected });
    if (action === 'silent') return;
    if (action === 'cancel') return this.reply(CAN, CAN, CAN, CAN, CAN);
    const nak = this.options.flavour === 'uboot' ? CRC_REQUEST : NAK;
    if (action === 'nak') return this.reply(nak);

    if (frame.kind === 'eot') {
      if (this.phase !== 'data') return;
      this.eotCount++;
      if (this.options.flavour === 'spec' && this.eotCount === 1) return this.reply(NAK);
      this.files.push({ ...this.current!, data: concat(this.chunks).subarray(0, this.current!.size) });
      this.phase = 'header';
      this.eotCount = 0;
      if (this.options.flavour === 'uboot') return this.reply(ACK, ACK, CRC_REQUEST);
      return this.reply(ACK, this.crc ? CRC_REQUEST : NAK);
    }
    if (!frame.intact) return this.reply(nak);
    if (this.phase === 'header') {
      if (frame.seq !== 0) return this.reply(CAN, CAN);
      const nul = frame.payload.indexOf(0);
      const name = new TextDecoder().decode(frame.payload.subarray(0, nul));
      if (name === '') {
        this.batchEnded = true;
        return this.reply(ACK);
      }
      const fields = new TextDecoder().decode(frame.payload.subarray(nul + 1, frame.payload.indexOf(0, nul + 1)));
      this.current = { name, size: Number(fields.split(' ')[0]) };
      this.chunks = [];
      this.phase = 'data';
      this.expected = 1;
      if (this.options.flavour === 'uboot') return this.reply(ACK);
      return this.reply(ACK, this.crc ? CRC_REQUEST : NAK);
    }
    if (frame.seq === this.expected) {
      this.chunks.push(frame.payload);
      this.expected = (this.expected + 1) & 0xff;
      return this.reply(ACK);
    }
    if (frame.seq === ((this.expected - 1) & 0xff)) return this.reply(ACK); // duplicate
    return this.reply(CAN, CAN); // sequence error: rb gives up
  }

  dataBlocks(): Extract<Frame, { kind: 'block' }>[] {
    return this.frames.filter((f): f is Extract<Frame, { kind: 'block' }> => f.kind === 'block' && f.payload.some((x) => x !== 0));
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

const FAST: YmodemSendOptions = { startTimeoutMs: 2_000, responseTimeoutMs: 300, headerGraceMs: 50, endOfBatchQuietMs: 100 };

async function expectYmodemError(p: Promise<unknown>, code: string): Promise<YmodemError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(YmodemError);
  expect((err as YmodemError).code).toBe(code);
  expect((err as YmodemError).name).toBe('YmodemError');
  expect((err as YmodemError).message).not.toContain('\n');
  return err as YmodemError;
}

// ---------------------------------------------------------------------------------------

describe('CRC-16/XMODEM', () => {
  test('golden values', () => {
    const enc = new TextEncoder();
    expect(crc16Xmodem(enc.encode('123456789'))).toBe(0x31c3); // the catalogue check value
    expect(crc16Xmodem(new Uint8Array(0))).toBe(0x0000);
    expect(crc16Xmodem(new Uint8Array(128))).toBe(0x0000);
    expect(crc16Xmodem(new Uint8Array(1024).fill(0x1a))).toBe(0xfc96);
    const ramp = new Uint8Array(1024).map((_, i) => i & 0xff);
    expect(crc16Xmodem(ramp)).toBe(0xc2e0);
  });

  test('continues across chunks and honours start/end', () => {
    const data = randomBytes(3000);
    const whole = crc16Xmodem(data);
    for (const cut of [0, 1, 127, 1024, 2999, 3000]) {
      expect(crc16Xmodem(data.subarray(cut), crc16Xmodem(data.subarray(0, cut)))).toBe(whole);
    }
    expect(crc16Xmodem(data, 0, 10, 20)).toBe(crc16Xmodem(data.subarray(10, 20)));
  });

  test('a receiver computing the CRC over payload+CRC gets zero', () => {
    const frame = encodeBlock(1, randomBytes(1024), 1024, 'crc16', 0x1a);
    expect(crc16Xmodem(frame, 0, 3)).toBe(0);
  });
});

describe('YMODEM framing', () => {
  test('a 128-byte data block, byte for byte', () => {
    const frame = encodeBlock(1, new TextEncoder().encode('A'), 128, 'crc16', 0x1a);
    expect(frame.length).toBe(133);
    expect([...frame.subarray(0, 4)]).toEqual([SOH, 0x01, 0xfe, 0x41]);
    expect(frame.subarray(4, 131).every((b) => b === 0x1a)).toBe(true);
    expect([...frame.subarray(131)]).toEqual([0xf2, 0xdd]);
  });

  test('a 1024-byte block uses STX and wraps the sequence number', () => {
    const frame = encodeBlock(256 + 7, new Uint8Array(1024), 1024, 'crc16', 0x1a);
    expect(frame.length).toBe(1029);
    expect([...frame.subarray(0, 3)]).toEqual([STX, 7, 0xf8]);
  });

  test('checksum mode carries one 8-bit sum', () => {
    const frame = encodeBlock(2, Uint8Array.from([0xff, 0xff, 0x03]), 128, 'checksum', 0x00);
    expect(frame.length).toBe(132);
    expect(frame[131]).toBe((0xff + 0xff + 0x03) & 0xff);
  });

  test('block 0: name NUL size SP mtime-octal, NUL padded, golden', () => {
    const frame = encodeHeaderBlock({ name: 'signet.simg', size: 12345, mtime: 1_700_000_000 }, 'crc16');
    const text = new TextEncoder().encode('signet.simg\u000012345 14524770400');
    expect(frame.length).toBe(133);
    expect([...frame.subarray(0, 3)]).toEqual([SOH, 0x00, 0xff]);
    expect([...frame.subarray(3, 3 + text.length)]).toEqual([...text]);
    expect(frame.subarray(3 + text.length, 131).every((b) => b === 0)).toBe(true);
    expect([...frame.subarray(131)]).toEqual([0x75, 0xd7]);
  });

  test('block 0 grows to 1024 bytes for a long name; end-of-batch is an empty block 0', () => {
    expect(encodeHeaderBlock({ name: 'x'.repeat(200), size: 1 }, 'crc16')[0]).toBe(STX);
    const end = encodeEndOfBatchBlock('crc16');
    expect([...end.subarray(0, 3)]).toEqual([SOH, 0x00, 0xff]);
    expect(end.subarray(3, 131).every((b) => b === 0)).toBe(true);
  });
});

describe('YMODEM sender state machine (mock link)', () => {
  test.each(['spec', 'rb', 'uboot'] as const)('delivers a file to a %s receiver', async (flavour) => {
    const link = await MockTransport.open();
    const rx = new Receiver(link, { flavour });
    const data = randomBytes(2500);
    const progress: [number, number][] = [];
    const result = await sendYmodem(link, { name: 'app.simg', data }, { ...FAST, onProgress: (s, t) => progress.push([s, t]) });

    expect(rx.files).toHaveLength(1);
    expect(rx.files[0]!.name).toBe('app.simg');
    expect(rx.files[0]!.size).toBe(2500);
    expect(Buffer.compare(rx.files[0]!.data, data)).toBe(0);
    expect(rx.batchEnded).toBe(true);
    // 1024 + 1024 + 452 -> three 1 K blocks; the last one is padded with SUB.
    const blocks = rx.frames.filter((f) => f.kind === 'block');
    expect(blocks.map((f) => (f.kind === 'block' ? [f.seq, f.length] : []))).toEqual([
      [0, 128],
      [1, 1024],
      [2, 1024],
      [3, 1024],
      [0, 128],
    ]);
    const last = blocks[3]!;
    expect(last.kind === 'block' && last.payload.subarray(452).every((b) => b === 0x1a)).toBe(true);
    expect(progress).toEqual([
      [1024, 2500],
      [2048, 2500],
      [2500, 2500],
    ]);
    expect(result.payloadBytes).toBe(2500);
    expect(result.retransmissions).toBe(0);
    expect(result.check).toBe('crc16');
    expect(result.wireBytes).toBe(link.written.length);
    expect(result.wireBytes).toBe(133 + 3 * 1029 + (flavour === 'spec' ? 2 : 1) + 133);
  });

  test('a remainder of at most 128 bytes goes in a 128-byte block', async () => {
    const link = await MockTransport.open();
    const rx = new Receiver(link, { flavour: 'rb' });
    const data = randomBytes(1025);
    await sendYmodem(link, { name: 'f', data }, FAST);
    expect(rx.frames.flatMap((f) => (f.kind === 'block' ? [f.length] : []))).toEqual([128, 1024, 128, 128]);
    expect(Buffer.compare(rx.files[0]!.data, data)).toBe(0);
  });

  test('an empty file is block 0 then EOT', async () => {
    const link = await MockTransport.open();
    const rx = new Receiver(link, { flavour: 'uboot' });
    await sendYmodem(link, { name: 'empty', data: new Uint8Array(0) }, FAST);
    expect(rx.frames.map((f) => f.kind)).toEqual(['block', 'eot', 'block']);
    expect(rx.files[0]).toMatchObject({ name: 'empty', size: 0 });
  });

  test('a batch of two files, and block numbers wrap past 255', async () => {
    const link = await MockTransport.open();
    const rx = new Receiver(link, { flavour: 'spec' });
    const big = randomBytes(300 * 1024);
    const small = randomBytes(10);
    await sendYmodem(link, [{ name: 'big', data: big }, { name: 'small', data: small }], FAST);
    expect(rx.files.map((f) => f.name)).toEqual(['big', 'small']);
    expect(Buffer.compare(rx.files[0]!.data, big)).toBe(0);
    expect(Buffer.compare(rx.files[1]!.data, small)).toBe(0);
    const seqs = rx.frames.flatMap((f) => (f.kind === 'block' && f.length === 1024 ? [f.seq] : []));
    expect(seqs.slice(254, 258)).toEqual([255, 0, 1, 2]);
  });

  test('a NAKed block is resent unchanged and counted', async () => {
    const link = await MockTransport.open();
    const events: YmodemEvent[] = [];
    const rx = new Receiver(link, {
      flavour: 'rb',
      fault: (f, attempt, s) => (f.kind === 'block' && s.phase === 'data' && f.seq === 2 && attempt <= 2 ? 'nak' : undefined),
    });
    const data = randomBytes(4096);
    const result = await sendYmodem(link, { name: 'f', data }, { ...FAST, onEvent: (e) => events.push(e) });
    expect(Buffer.compare(rx.files[0]!.data, data)).toBe(0);
    expect(result.retransmissions).toBe(2);
    expect(events.filter((e) => e.type === 'retry')).toEqual([
      { type: 'retry', frame: 'data', file: 'f', block: 2, reason: 'nak' },
      { type: 'retry', frame: 'data', file: 'f', block: 2, reason: 'nak' },
    ]);
    const block2 = rx.frames.filter((f) => f.kind === 'block' && f.seq === 2);
    expect(block2).toHaveLength(3);
    expect(block2.every((f) => f.kind === 'block' && Buffer.compare(f.payload, data.subarray(1024, 2048)) === 0)).toBe(true);
    // A 1 K block that needed 3 transmissions makes the following blocks 128 bytes.
    expect(events).toContainEqual({ type: 'block-size', length: 128 });
    expect(rx.frames.flatMap((f) => (f.kind === 'block' && f.seq === 3 ? [f.length] : []))).toEqual([128]);
  });

  test("U-Boot's 'C' after a bad block means resend", async () => {
    const link = await MockTransport.open();
    new Receiver(link, {
      flavour: 'uboot',
      fault: (f, attempt, s) => (f.kind === 'block' && s.phase === 'data' && f.seq === 1 && attempt === 1 ? 'nak' : undefined),
    });
    const result = await sendYmodem(link, { name: 'f', data: randomBytes(2000) }, FAST);
    expect(result.retransmissions).toBe(1);
  });

  test('a lost ACK is recovered by timeout; the receiver ACKs the duplicate', async () => {
    const link = await MockTransport.open();
    const rx = new Receiver(link, {
      flavour: 'rb',
      fault: (f, attempt, s) => (f.kind === 'block' && s.phase === 'data' && f.seq === 1 && attempt === 1 ? 'silent' : undefined),
    });
    const data = randomBytes(3000);
    const events: YmodemEvent[] = [];
    await sendYmodem(link, { name: 'f', data }, { ...FAST, onEvent: (e) => events.push(e) });
    expect(events.filter((e) => e.type === 'retry')).toEqual([{ type: 'retry', frame: 'data', file: 'f', block: 1, reason: 'timeout' }]);
    expect(Buffer.compare(rx.files[0]!.data, data)).toBe(0);
    // A frame that drew no answer at all looks like rb flushing it: pause before frames from now on.
    expect(events).toContainEqual({ type: 'turnaround-guard', microseconds: 250 });
  });

  test('a plain NAK does not turn the turnaround guard on, and a fixed guard never changes', async () => {
    for (const turnaroundGuardUs of ['auto', 0] as const) {
      const link = await MockTransport.open();
      const events: YmodemEvent[] = [];
      new Receiver(link, {
        flavour: 'rb',
        fault: (f, attempt, s) => (f.kind === 'block' && s.phase === 'data' && attempt === 1 ? (f.seq === 1 ? 'nak' : f.seq === 2 ? 'silent' : undefined) : undefined),
      });
      await sendYmodem(link, { name: 'f', data: randomBytes(3000) }, { ...FAST, turnaroundGuardUs, onEvent: (e) => events.push(e) });
      const guard = events.filter((e) => e.type === 'turnaround-guard');
      expect(guard).toEqual(turnaroundGuardUs === 'auto' ? [{ type: 'turnaround-guard', microseconds: 250 }] : []);
      // The guard came from block 2's silence, not block 1's NAK.
      const order = events.map((e) => (e.type === 'retry' ? `retry-${e.block}` : e.type));
      if (turnaroundGuardUs === 'auto') expect(order.indexOf('turnaround-guard')).toBeGreaterThan(order.indexOf('retry-1'));
    }
  });

  test('a receiver that cancels (CAN CAN) stops the sender with E_YMODEM_CANCELLED', async () => {
    const link = await MockTransport.open();
    const rx = new Receiver(link, {
      flavour: 'rb',
      fault: (f, _a, s) => (f.kind === 'block' && s.phase === 'data' && f.seq === 3 ? 'cancel' : undefined),
    });
    const err = await expectYmodemError(sendYmodem(link, { name: 'f', data: randomBytes(8192) }, FAST), 'E_YMODEM_CANCELLED');
    expect(err.details.bytesAcknowledged).toBe(2048);
    // Nothing after block 3, and no CAN back to a receiver that already left.
    const last = rx.frames[rx.frames.length - 1]!;
    expect(last.kind === 'block' && last.seq).toBe(3);
  });

  test('a single CAN is line noise, not a cancel', async () => {
    const link = await MockTransport.open();
    let noisy = false;
    link.onWrite((bytes) => {
      if (!noisy && bytes[0] === STX) {
        noisy = true;
        link.emitData([CAN]); // arrives before the ACK
      }
    });
    const rx = new Receiver(link, { flavour: 'rb' });
    const data = randomBytes(2048);
    await sendYmodem(link, { name: 'f', data }, FAST);
    expect(Buffer.compare(rx.files[0]!.data, data)).toBe(0);
  });

  test('a receiver that never answers: E_YMODEM_TIMEOUT at the handshake, and no CAN sent', async () => {
    const link = await MockTransport.open();
    new Receiver(link, { flavour: 'rb', mute: true });
    const err = await expectYmodemError(
      sendYmodem(link, { name: 'f', data: randomBytes(10) }, { ...FAST, startTimeoutMs: 100 }),
      'E_YMODEM_TIMEOUT',
    );
    expect(err.details.frame).toBe('handshake');
    expect(link.writes).toHaveLength(0);
  });

  test('a receiver that goes silent mid-file: E_YMODEM_TIMEOUT after the retry limit, then CAN', async () => {
    const link = await MockTransport.open();
    const rx = new Receiver(link, {
      flavour: 'rb',
      fault: (f, _a, s) => (f.kind === 'block' && s.phase === 'data' && f.seq === 2 ? 'silent' : undefined),
    });
    const err = await expectYmodemError(
      sendYmodem(link, { name: 'f', data: randomBytes(5000) }, { ...FAST, responseTimeoutMs: 50, maxRetries: 3 }),
      'E_YMODEM_TIMEOUT',
    );
    expect(err.details).toMatchObject({ frame: 'data', block: 2, attempts: 4, bytesAcknowledged: 1024 });
    expect(rx.frames.filter((f) => f.kind === 'block' && f.seq === 2)).toHaveLength(4);
    expect(rx.frames.filter((f) => f.kind === 'can').length).toBeGreaterThanOrEqual(3); // U-Boot needs 3
  });

  test('a receiver that NAKs everything: E_YMODEM_RETRIES', async () => {
    const link = await MockTransport.open();
    new Receiver(link, {
      flavour: 'spec',
      fault: (f, _a, s) => (f.kind === 'block' && s.phase === 'data' ? 'nak' : undefined),
    });
    const err = await expectYmodemError(
      sendYmodem(link, { name: 'f', data: randomBytes(5000) }, { ...FAST, maxRetries: 4 }),
      'E_YMODEM_RETRIES',
    );
    expect(err.details).toMatchObject({ frame: 'data', block: 1, attempts: 5, file: 'f' });
  });

  test('checksum mode when the receiver opens with NAK', async () => {
    const link = await MockTransport.open();
    const rx = new Receiver(link, { flavour: 'spec', check: 'checksum' });
    const data = randomBytes(1500);
    const result = await sendYmodem(link, { name: 'f', data }, FAST);
    expect(result.check).toBe('checksum');
    expect(Buffer.compare(rx.files[0]!.data, data)).toBe(0);
    expect(link.writes[1]!.length).toBe(1028); // STX seq ~seq 1024 sum
  });

  test("stale 'C's queued before the sender started do not duplicate block 0", async () => {
    const link = await MockTransport.open();
    link.emitData([CRC_REQUEST, CRC_REQUEST, CRC_REQUEST]);
    const rx = new Receiver(link, { flavour: 'uboot' });
    await sendYmodem(link, { name: 'f', data: randomBytes(100) }, FAST);
    expect(rx.frames.filter((f) => f.kind === 'block' && f.seq === 0)).toHaveLength(2); // header + end of batch
  });

  test('console text before the handshake is ignored', async () => {
    const link = await MockTransport.open();
    link.emitData('## Ready for binary (ymodem) download to 0x40200000 at 115200 bps...\r\n');
    const rx = new Receiver(link, { flavour: 'uboot' });
    await sendYmodem(link, { name: 'f', data: randomBytes(100) }, FAST);
    expect(rx.files).toHaveLength(1);
  });

  test('aborting sends CAN and rejects with E_YMODEM_ABORTED', async () => {
    const link = await MockTransport.open();
    const abort = new AbortController();
    const rx = new Receiver(link, {
      flavour: 'rb',
      fault: (f, _a, s) => {
        if (f.kind === 'block' && s.phase === 'data' && f.seq === 2) {
          abort.abort();
          return 'silent';
        }
        return undefined;
      },
    });
    await expectYmodemError(
      sendYmodem(link, { name: 'f', data: randomBytes(5000) }, { ...FAST, responseTimeoutMs: 5_000, signal: abort.signal }),
      'E_YMODEM_ABORTED',
    );
    expect(rx.frames.filter((f) => f.kind === 'can').length).toBeGreaterThanOrEqual(3);
  });

  test('a link that dies mid-transfer: E_YMODEM_TRANSPORT with the cause kept', async () => {
    const link = await MockTransport.open();
    new Receiver(link, {
      flavour: 'rb',
      fault: (f, _a, s) => {
        if (f.kind === 'block' && s.phase === 'data' && f.seq === 1) {
          setImmediate(() => link.hangUp());
          return 'silent';
        }
        return undefined;
      },
    });
    const err = await expectYmodemError(sendYmodem(link, { name: 'f', data: randomBytes(5000) }, { ...FAST, responseTimeoutMs: 5_000 }), 'E_YMODEM_TRANSPORT');
    expect((err.cause as { code?: string }).code).toBe('E_TRANSPORT_CLOSED');
  });

  test('names YMODEM cannot carry are refused before anything is sent', async () => {
    const link = await MockTransport.open();
    await expectYmodemError(sendYmodem(link, { name: '', data: new Uint8Array(1) }, FAST), 'E_YMODEM_FILE');
    await expectYmodemError(sendYmodem(link, { name: 'a\0b', data: new Uint8Array(1) }, FAST), 'E_YMODEM_FILE');
    await expectYmodemError(sendYmodem(link, { name: 'n'.repeat(1100), data: new Uint8Array(1) }, FAST), 'E_YMODEM_FILE');
    expect(link.writes).toHaveLength(0);
  });

  test('maxBlockLength 128 sends XMODEM-sized blocks only', async () => {
    const link = await MockTransport.open();
    const rx = new Receiver(link, { flavour: 'rb' });
    const data = randomBytes(1000);
    await sendYmodem(link, { name: 'f', data }, { ...FAST, maxBlockLength: 128 });
    expect(new Set(rx.frames.flatMap((f) => (f.kind === 'block' ? [f.length] : [])))).toEqual(new Set([128]));
    expect(Buffer.compare(rx.files[0]!.data, data)).toBe(0);
  });
});

describe('a frame short of a byte (nudge, for U-Boot)', () => {
  test('the sender adds one filler byte when the answer is late: the short frame fails at once and is sent again', async () => {
    // A U-Boot-like receiver that lost the last byte of the first data frame: it waits for one
    // more byte (U-Boot would wait 2 s), takes the filler as that byte, fails the frame ('C').
    const link = await MockTransport.open('mock:short-frame');
    const data = new Uint8Array(randomBytes(300));
    let buf: number[] = [];
    let phase: 'header' | 'data1' | 'short' | 'data2' | 'eot' | 'end' | 'done' = 'header';
    const fillers: number[] = [];
    const got: Uint8Array[] = [];
    const reply = (...b: number[]) => setImmediate(() => link.emitData(b));
    link.onWrite((bytes) => {
      buf.push(...bytes);
      for (;;) {
        const need = phase === 'header' || phase === 'end' ? 133 : phase === 'data1' || phase === 'data2' ? 1029 : phase === 'done' ? Infinity : 1;
        if (buf.length < need) return;
        const frame = buf.slice(0, need);
        buf = buf.slice(need);
        if (phase === 'header') (phase = 'data1'), reply(ACK);
        else if (phase === 'data1') phase = 'short'; // its last byte "lost": one more is awaited
        else if (phase === 'short') fillers.push(frame[0]!), (phase = 'data2'), reply(CRC_REQUEST);
        else if (phase === 'data2') got.push(Uint8Array.from(frame.slice(3, 3 + 300))), (phase = 'eot'), reply(ACK);
        else if (phase === 'eot') (phase = 'end'), reply(ACK, CRC_REQUEST);
        else if (phase === 'end') (phase = 'done'), reply(ACK);
      }
    });
    link.emitData([CRC_REQUEST]);
    const r = await sendYmodem(link, { name: 'short.bin', data }, { headerGraceMs: 50, responseTimeoutMs: 30_000, nudge: { max: 4 } });
    expect(fillers).toEqual([0x00]);
    expect(r.retransmissions).toBe(1);
    expect(Buffer.compare(Buffer.from(got[0]!), Buffer.from(data))).toBe(0);
    expect(phase).toBe('done');
  });
});
