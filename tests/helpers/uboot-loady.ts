/**
 * Test double: U-Boot's `loady` receiver (common/xyzModem.c and cmd/load.c, unchanged from
 * 2023.01 to today), modelled from its behaviour for the YMODEM sender's unit tests, where the
 * real one (tests/flash-*.test.ts, in QEMU) cannot be made to lose a given byte. What the model
 * keeps, because the sender's timing depends on it:
 *
 *  - every read waits at most `charTimeoutMs` (2 s) for a byte;
 *  - looking for a frame start it skips anything but SOH/STX; CAN or Ctrl-C three times cancels;
 *    EOT counts only as the first byte it reads for that frame;
 *  - silence while looking for a frame start: it waits for the line to stay quiet for a whole
 *    `charTimeoutMs` (a byte in that time starts the wait again), pauses 250 ms, and asks again
 *    ('C'); silence in the middle of a frame: it asks again at once;
 *  - a frame whose sequence byte and its complement disagree: the same wait for a quiet line,
 *    then 'C'; a frame whose CRC fails: 'C' at once;
 *  - block 0 (the header) is never rejected aloud: a bad one is dropped without a word, and only
 *    silence (after the quiet-line wait and another 500 ms) brings a 'C';
 *  - 20 failed frames in a row for one block end the transfer (CAN CAN CAN CAN, the quiet-line
 *    wait, an error), a duplicate of the last block is ACKed again (and counts as one of the 20);
 *  - after EOT: ACK, ACK, 'C', and the closing block 0 gets one chance: ACKed whatever arrived,
 *    and if it was not a good frame the transfer ends in an error all the same.
 *
 * The model reads what `deliver` is given and answers through `answer` (both wired by the test,
 * usually to a MockTransport, with whatever damage the test wants in between).
 */
import { crc16Xmodem } from '../../sdk/flash/crc16';

const SOH = 0x01;
const STX = 0x02;
const ETX = 0x03;
const EOT = 0x04;
const ACK = 0x06;
const BS = 0x08;
const CAN = 0x18;
const C = 0x43;

type Status = 'ok' | 'timeout' | 'eof' | 'cancel' | 'frame' | 'cksum' | 'sequence';

export interface LoadyOutcome {
  /** 'ok' ("## Total Size"), or the error U-Boot prints before "download aborted". */
  status: 'ok' | Exclude<Status, 'ok'>;
  data: Uint8Array;
}

export interface LoadyStats {
  /** Frames received whole and good (including duplicates ACKed again). */
  goodFrames: number;
  /** Silences while looking for a frame start (each followed by a quiet-line wait). */
  huntTimeouts: number;
  /** Silences in the middle of a frame. */
  frameTimeouts: number;
  framingErrors: number;
  crcErrors: number;
  /** Bytes thrown away while waiting for a quiet line. */
  flushedBytes: number;
}

export class LoadyReceiver {
  readonly stats: LoadyStats = { goodFrames: 0, huntTimeouts: 0, frameTimeouts: 0, framingErrors: 0, crcErrors: 0, flushedBytes: 0 };
  /** Resolves when loady returns to the prompt. */
  readonly done: Promise<LoadyOutcome>;
  private readonly queue: number[] = [];
  private wake: (() => void) | undefined;
  private readonly charTimeoutMs: number;
  private txAck = false;
  private blk = 0;
  private frame = new Uint8Array(0);
  private finished = false;

  constructor(
    private readonly answer: (bytes: Uint8Array) => void,
    options: { charTimeoutMs?: number } = {},
  ) {
    this.charTimeoutMs = options.charTimeoutMs ?? 2_000;
    this.done = this.run().finally(() => {
      this.finished = true;
    });
  }

  /** Bytes that reached the board. Ignored once loady has returned. */
  deliver(bytes: Uint8Array): void {
    if (this.finished) return;
    for (const b of bytes) this.queue.push(b);
    this.wake?.();
  }

  private put(...bytes: number[]): void {
    this.answer(Uint8Array.from(bytes));
  }

  private async getc(): Promise<number | undefined> {
    if (this.queue.length > 0) return this.queue.shift();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, this.charTimeoutMs);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
    return this.queue.shift();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** Waits until the line has been quiet for a whole character timeout. */
  private async flush(): Promise<void> {
    for (;;) {
      const c = await this.getc();
      if (c === undefined) return;
      this.stats.flushedBytes++;
    }
  }

  private async getHeader(): Promise<Status> {
    if (this.txAck) {
      this.put(ACK);
      this.txAck = false;
    }
    let cans = 0;
    let seen = 0;
    let start: number;
    for (;;) {
      const c = await this.getc();
      if (c === undefined) {
        this.stats.huntTimeouts++;
        await this.flush();
        await this.sleep(this.charTimeoutMs / 8);
        return 'timeout';
      }
      seen++;
      if (c === SOH || c === STX) {
        start = c;
        break;
      }
      if (c === CAN || c === ETX) {
        if (++cans === 3) return 'cancel';
      } else if (c === EOT && seen === 1) {
        this.put(ACK);
        return 'eof';
      }
    }
    const length = start === STX ? 1024 : 128;
    const bytes: number[] = [];
    for (let i = 0; i < 2 + length + 2; i++) {
      const c = await this.getc();
      if (c === undefined) {
        this.stats.frameTimeouts++;
        return 'timeout';
      }
      bytes.push(c);
    }
    if ((bytes[0]! ^ bytes[1]!) !== 0xff) {
      this.stats.framingErrors++;
      await this.flush();
      return 'frame';
    }
    this.blk = bytes[0]!;
    this.frame = Uint8Array.from(bytes.slice(2, 2 + length));
    if (crc16Xmodem(this.frame) !== ((bytes[2 + length]! << 8) | bytes[3 + length]!)) {
      this.stats.crcErrors++;
      return 'cksum';
    }
    this.stats.goodFrames++;
    return 'ok';
  }

  private async run(): Promise<LoadyOutcome> {
    const chunks: Uint8Array[] = [];
    const data = (): Uint8Array => Uint8Array.from(chunks.flatMap((c) => [...c]));
    // Opening: 'C', then block 0. A bad block 0 gets no answer; silence gets a 'C'.
    this.put(C);
    let size = 0;
    for (;;) {
      const s = await this.getHeader();
      if (s === 'ok') {
        if (this.blk === 0) {
          const nul = this.frame.indexOf(0);
          size = parseInt(new TextDecoder().decode(this.frame.subarray(nul + 1, this.frame.indexOf(0, nul + 1))).split(' ')[0]!, 10) || 0;
          this.txAck = true;
        }
        break;
      }
      if (s === 'timeout') {
        await this.sleep(this.charTimeoutMs / 4);
        this.put(C);
      }
      if (s === 'cancel') return this.end('cancel', data());
    }
    // Data blocks.
    let next = 1;
    let received = 0;
    for (;;) {
      let s: Status = 'cancel';
      let eof = false;
      for (let retries = 20; retries-- > 0; ) {
        s = await this.getHeader();
        if (s === 'ok') {
          if (this.blk === next) {
            this.txAck = true;
            next = (next + 1) & 0xff;
            const keep = size > 0 ? Math.max(0, Math.min(this.frame.length, size - received)) : this.frame.length;
            chunks.push(this.frame.subarray(0, keep));
            received += this.frame.length;
            break;
          }
          if (this.blk === ((next - 1) & 0xff)) {
            this.put(ACK);
            continue;
          }
          s = 'sequence';
        }
        if (s === 'cancel') break;
        if (s === 'eof') {
          this.put(ACK, C);
          s = await this.getHeader(); // the closing block 0: one chance
          this.put(ACK);
          eof = true;
          break;
        }
        this.put(C);
      }
      if (s !== 'ok') return this.end(s, data());
      if (eof) return this.end('ok', data());
    }
  }

  private async end(status: LoadyOutcome['status'], data: Uint8Array): Promise<LoadyOutcome> {
    if (status !== 'ok' && status !== 'cancel') {
      this.put(CAN, CAN, CAN, CAN, BS, BS, BS, BS);
      await this.flush();
    } else {
      this.queue.length = 0; // the trailing bytes it eats before returning
      await this.sleep(this.charTimeoutMs / 8);
    }
    return { status, data };
  }
}
