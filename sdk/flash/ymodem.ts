/**
 * YMODEM batch sender (docs/ymodem.md). Peers it is written against:
 *  - U-Boot `loady` (common/xyzModem.c): sends one 'C' and then one more only after each
 *    ~2 s silence; NAKs a bad block with 'C', not NAK; does NOT send 'C' after ACKing
 *    block 0; answers the first EOT with ACK, ACK, 'C'; ACKs the closing block 0 whatever
 *    it contains; needs 3 CANs to cancel; falls back to checksum mode (NAK) after 10
 *    unanswered 'C's.
 *  - lrzsz `rb`: ACKs block 0 then sends 'C' and flushes its input, so block 1 must wait
 *    for that 'C'; ACKs the first EOT when it is followed by 100 ms of silence; cancels on
 *    2 consecutive CANs.
 *
 * Every step waits for the receiver: one frame in flight, no streaming (that would be
 * YMODEM-g, which neither peer asks for).
 */
import type { Transport } from './transport-types';
import { TransportError } from './transport-errors';
import { YmodemError, type YmodemErrorDetails } from './ymodem-errors';
import {
  ACK,
  BS,
  CAN,
  CRC_REQUEST,
  EOT,
  NAK,
  SUB,
  encodeBlock,
  encodeEndOfBatchBlock,
  encodeHeaderBlock,
  encodeHeaderPayload,
  frameOverhead,
  type BlockLength,
  type CheckMode,
} from './ymodem-frame';

export { YmodemError } from './ymodem-errors';
export type { YmodemErrorCode, YmodemErrorDetails } from './ymodem-errors';

export interface YmodemFile {
  /** Sent in block 0. rb creates a file of this name; U-Boot ignores it. Use a base name. */
  name: string;
  data: Uint8Array;
  /** Modification time, sent in octal seconds when given. */
  mtime?: Date;
}

export type YmodemEvent =
  | { type: 'start'; check: CheckMode }
  | { type: 'retry'; frame: 'header' | 'data' | 'eot' | 'end-of-batch'; file?: string; block?: number; reason: 'nak' | 'timeout' }
  | { type: 'block-size'; length: BlockLength }
  | { type: 'turnaround-guard'; microseconds: number };

export interface YmodemSendOptions {
  /** How long to wait for the receiver's first 'C' (or NAK). Default 60 s (U-Boot gives up after ~55 s). */
  startTimeoutMs?: number;
  /** How long to wait for ACK/NAK after each frame. Default 10 s, longer than U-Boot's 2 s and rb's 5 s. */
  responseTimeoutMs?: number;
  /** Retransmissions of one frame before giving up. Default 10. */
  maxRetries?: number;
  /**
   * After block 0 is ACKed, how long to wait for the receiver's 'C' before sending block 1
   * anyway. rb sends it at once (and drops input until then); U-Boot never sends it and
   * times out after 2 s, so this must stay well under 2 s. Default 1000 ms.
   */
  headerGraceMs?: number;
  /**
   * After the closing empty block 0, how long silence counts as "receiver done" instead of
   * a lost block (see `exchange`). Default 2000 ms.
   */
  endOfBatchQuietMs?: number;
  /** Largest data block. Default 1024; 128 forces XMODEM-sized blocks throughout. */
  maxBlockLength?: BlockLength;
  /**
   * Drop to 128-byte blocks after a 1 K block needed 3 or more transmissions, and go back
   * to 1 K after 32 clean 128-byte blocks. Only new blocks change size, never a
   * retransmission. Default true.
   */
  adaptiveBlockLength?: boolean;
  /**
   * Pause before each frame, after the receiver's answer to the previous one. lrzsz rb (and
   * many MCU loaders) flush their input right after writing ACK or NAK; on a pty or socket
   * a sender quicker than that flush loses the whole frame and the transfer stalls for the
   * receiver's timeout (5 s for rb). 'auto' (default) sends without a pause until the
   * receiver shows it lost a whole frame (no answer, or a NAK only after 1 s of silence),
   * then pauses 250 µs before every frame for the rest of the batch. On a real UART a
   * frame takes milliseconds to arrive, so the pause never matters there.
   */
  turnaroundGuardUs?: number | 'auto';
  /**
   * For U-Boot's loady (docs/ymodem.md, "Late answers"), whose silences cost seconds: it waits
   * 2 s for each missing byte of a frame, drops a bad block 0 without a word, and after a
   * framing error or a silence waits for the line to stay quiet for 2 s before it asks again
   * (a byte in that time starts the wait over). With `nudge`, when no answer comes within a few
   * times the usual answer delay:
   *  - one filler byte (NUL: not SOH, STX, EOT or CAN) is sent, up to `max` times per
   *    transmission (once for block 0): it completes a frame that lost bytes, whose check then
   *    fails at once; a receiver that had the whole frame skips it before the next frame start;
   *    it also completes a closing block 0 that lost a byte exactly (that block is all NULs);
   *  - a data block or block 0 still unanswered after that is sent again at once, while the
   *    receiver is still looking for a frame start (a bad block 0, a lost ACK or a lost 'C');
   *  - if that one is unanswered too, the sender stays silent until the receiver asks (or
   *    `responseTimeoutMs` after its last byte): a receiver waiting for a quiet line gets it.
   * Not for lrzsz rb, which counts such noise as errors. Default off.
   */
  nudge?: { max: number };
  /**
   * The receiver's usual delay in answering a 128-byte frame, from an earlier transfer to it
   * (`YmodemSendResult.replyMs`): when to nudge before this transfer has measured its own.
   */
  expectedReplyMs?: number;
  /** Called after every acknowledged data block: payload bytes acknowledged, and the total, over the batch. */
  onProgress?: (sentBytes: number, totalBytes: number) => void;
  onEvent?: (event: YmodemEvent) => void;
  signal?: AbortSignal;
}

export interface YmodemSendResult {
  /** File bytes delivered, summed over the batch (padding excluded). */
  payloadBytes: number;
  /** Every byte we wrote: frames, retransmissions, padding, EOTs. */
  wireBytes: number;
  /** Frames written, including retransmissions and block 0s. */
  framesSent: number;
  retransmissions: number;
  check: CheckMode;
  /** The receiver's smoothed delay in answering a 128-byte frame, when one was measured (see `expectedReplyMs`). */
  replyMs?: number;
}

const CANCEL_SEQUENCE = Uint8Array.from([CAN, CAN, CAN, CAN, CAN, BS, BS, BS, BS, BS]);
const EOT_FRAME = Uint8Array.from([EOT]);
const CANCEL_REPEAT_MS = 500;
const AUTO_GUARD_US = 250;
/** A NAK that comes this long after the frame means the receiver timed out: the frame was lost whole. */
const LOST_FRAME_SILENCE_MS = 1_000;
/** After a NAK the receiver flushes its input (rb does, at once); the retransmission waits this long. */
const NAK_SETTLE_MS = 5;
const GUARD_CELL = new Int32Array(new SharedArrayBuffer(4));
const DOWNSHIFT_AFTER_ATTEMPTS = 3;
const UPSHIFT_AFTER_CLEAN_BLOCKS = 32;
/** The turnaround guard doubles with every frame the receiver loses, up to this. */
const MAX_GUARD_US = 8_000;
const NUDGE_BYTE = Uint8Array.from([0x00]);
const NUDGE_FIRST_MS = 400;
const NUDGE_MIN_MS = 60;
const NUDGE_MAX_MS = 1_500;

/** 'unanswered': still silent after the nudges, and the frame may be sent again at once (see `nudge`). */
type Reply = 'ack' | 'nak' | 'timeout' | 'unanswered';

/** What to do while an answer is late (see `nudge`). */
interface LatePlan {
  /** Filler bytes to send, one per `waitMs` of silence. */
  fillers: number;
  /** After the fillers and another `waitMs` of silence: 'unanswered' instead of waiting on. */
  resend: boolean;
  waitMs: number;
}

const NO_NUDGE: LatePlan = { fillers: 0, resend: false, waitMs: 0 };
/** Longest pause after the ACK of a frame sent twice, for the second ACK the receiver may send. */
const DUPLICATE_ACK_MS = 250;
/** In `nudge` mode, how long to wait for the 'C' that U-Boot sends together with its ACKs of EOT: it reads the closing block 0 only until its 2 s timeout. */
const NEXT_HEADER_WAIT_MS = 1_000;
type FrameKind = 'header' | 'data' | 'eot' | 'end-of-batch';

/** Sends `files` as one YMODEM batch over `transport` and closes the batch. */
export async function sendYmodem(
  transport: Transport,
  files: YmodemFile | readonly YmodemFile[],
  options: YmodemSendOptions = {},
): Promise<YmodemSendResult> {
  const list = Array.isArray(files) ? (files as readonly YmodemFile[]) : [files as YmodemFile];
  return new YmodemSender(transport, list, options).run();
}

class YmodemSender {
  private readonly startTimeoutMs: number;
  private readonly responseTimeoutMs: number;
  private readonly maxRetries: number;
  private readonly headerGraceMs: number;
  private readonly endOfBatchQuietMs: number;
  private readonly maxBlockLength: BlockLength;
  private readonly adaptive: boolean;
  private readonly totalBytes: number;

  private check: CheckMode = 'crc16';
  private started = false;
  private acknowledged = 0;
  private wireBytes = 0;
  private framesSent = 0;
  private retransmissions = 0;
  private blockLength: BlockLength;
  private cleanSmallBlocks = 0;
  /** A CAN was the last byte seen; a second one in a row means the receiver cancelled. */
  private sawCan = false;
  /** A frame is out and unanswered: the receiver may still be busy with it. */
  private frameInFlight = false;
  private guardUs: number;
  private readonly autoGuard: boolean;
  /** Smoothed delay between a frame written and its ACK, per frame length (ms). */
  private readonly replyMs = new Map<number, number>();

  constructor(
    private readonly link: Transport,
    private readonly files: readonly YmodemFile[],
    private readonly options: YmodemSendOptions,
  ) {
    this.startTimeoutMs = options.startTimeoutMs ?? 60_000;
    this.responseTimeoutMs = options.responseTimeoutMs ?? 10_000;
    this.maxRetries = options.maxRetries ?? 10;
    this.headerGraceMs = options.headerGraceMs ?? 1_000;
    this.endOfBatchQuietMs = options.endOfBatchQuietMs ?? 2_000;
    this.maxBlockLength = options.maxBlockLength ?? 1024;
    this.adaptive = options.adaptiveBlockLength ?? true;
    this.blockLength = this.maxBlockLength;
    const guard = options.turnaroundGuardUs ?? 'auto';
    this.autoGuard = guard === 'auto';
    this.guardUs = guard === 'auto' ? 0 : Math.max(0, guard);
    this.totalBytes = files.reduce((n, f) => n + f.data.length, 0);
    for (const file of files) validateFile(file);
  }

  async run(): Promise<YmodemSendResult> {
    try {
      await this.awaitReceiverReady();
      for (const file of this.files) await this.sendFile(file);
      await this.awaitNextHeaderRequest();
      await this.exchange(encodeEndOfBatchBlock(this.check), 'end-of-batch', {});
    } catch (err) {
      throw await this.fail(err);
    }
    return {
      payloadBytes: this.acknowledged,
      wireBytes: this.wireBytes,
      framesSent: this.framesSent,
      retransmissions: this.retransmissions,
      check: this.check,
      replyMs: this.replyMs.get(smallFrameLength(this.check)),
    };
  }

  /** Step 1: the receiver opens with 'C' (CRC-16) or NAK (8-bit checksum). */
  private async awaitReceiverReady(): Promise<void> {
    const deadline = Date.now() + this.startTimeoutMs;
    for (;;) {
      const byte = await this.nextControlByte(deadline - Date.now());
      if (byte === undefined) {
        throw new YmodemError(
          'E_YMODEM_TIMEOUT',
          `the receiver on ${this.link.address} did not ask for data within ${this.startTimeoutMs} ms — start "loady" (or rb) on the board first`,
          { frame: 'handshake' },
        );
      }
      if (byte === CRC_REQUEST || byte === NAK) {
        this.check = byte === CRC_REQUEST ? 'crc16' : 'checksum';
        this.started = true;
        if (this.options.expectedReplyMs !== undefined) this.replyMs.set(smallFrameLength(this.check), this.options.expectedReplyMs);
        this.options.onEvent?.({ type: 'start', check: this.check });
        return;
      }
    }
  }

  private async sendFile(file: YmodemFile): Promise<void> {
    if (file !== this.files[0]) await this.awaitNextHeaderRequest();
    const header = encodeHeaderBlock(
      { name: file.name, size: file.data.length, mtime: file.mtime ? file.mtime.getTime() / 1000 : undefined },
      this.check,
    );
    await this.exchange(header, 'header', { file: file.name });
    await this.awaitDataRequest();

    // Step 3: data blocks, numbered from 1 and wrapping at 256.
    const data = file.data;
    let offset = 0;
    let block = 1;
    while (offset < data.length) {
      const remaining = data.length - offset;
      const length: BlockLength = remaining <= 128 || this.blockLength === 128 ? 128 : 1024;
      const payload = data.subarray(offset, offset + Math.min(length, remaining));
      const frame = encodeBlock(block & 0xff, payload, length, this.check, SUB);
      const attempts = await this.exchange(frame, 'data', { file: file.name, block });
      this.adaptBlockLength(length, attempts);
      offset += payload.length;
      this.acknowledged += payload.length;
      this.options.onProgress?.(this.acknowledged, this.totalBytes);
      block++;
    }

    // Step 4: EOT until ACKed. rb ACKs the first EOT; spec receivers NAK it once; U-Boot
    // ACKs twice and then sends 'C'. The extra ACK is skipped while awaiting the next 'C'.
    await this.exchange(EOT_FRAME, 'eot', { file: file.name });
  }

  /** Step 2b: after block 0, rb sends 'C' (and discards input until then); U-Boot does not. */
  private async awaitDataRequest(): Promise<void> {
    const deadline = Date.now() + this.headerGraceMs;
    for (;;) {
      const byte = await this.nextControlByte(deadline - Date.now());
      if (byte === undefined || byte === CRC_REQUEST || byte === NAK) return;
    }
  }

  /** Before the next block 0 (next file or end of batch) the receiver asks with 'C'. */
  private async awaitNextHeaderRequest(): Promise<void> {
    const deadline = Date.now() + (this.options.nudge ? Math.min(this.responseTimeoutMs, NEXT_HEADER_WAIT_MS) : this.responseTimeoutMs);
    for (;;) {
      const byte = await this.nextControlByte(deadline - Date.now());
      // On timeout send anyway: U-Boot sends its one 'C' and then waits only 2 s.
      if (byte === undefined || byte === CRC_REQUEST || byte === NAK) return;
    }
  }

  /**
   * Writes `frame` until the receiver ACKs it; NAK, 'C' and silence each cost one retry.
   * Returns the number of transmissions.
   */
  private async exchange(frame: Uint8Array, kind: FrameKind, where: { file?: string; block?: number }): Promise<number> {
    // Every file was already confirmed by the ACK of its EOT, so the closing block 0 only
    // needs resending while the receiver asks for it. Silence means it is gone: lrzsz rb
    // flushes its tty (TCIOFLUSH) right after writing this ACK and exits, which on a pty
    // often loses the ACK; U-Boot ACKs this block whatever it holds and returns to its
    // prompt, where a resent block would arrive as typed garbage.
    const silenceEnds = kind === 'end-of-batch';
    const timeoutMs = silenceEnds ? Math.min(this.responseTimeoutMs, this.endOfBatchQuietMs) : this.responseTimeoutMs;
    let nakCount = 0;
    // This transmission follows one that went unanswered without a pause (see `nudge`).
    let sentAgainAtOnce = false;
    for (let attempt = 1; ; attempt++) {
      this.turnaroundPause();
      await this.dropStaleInput();
      this.throwIfAborted();
      await this.writeFrame(frame);
      this.frameInFlight = true;
      const sentAt = Date.now();
      const { reply, fillers, lastByteAt } = await this.awaitReply(timeoutMs, this.latePlan(kind, frame.length, sentAgainAtOnce));
      this.frameInFlight = false;
      if (reply === 'ack' && frame.length > 1 && fillers === 0) {
        const took = Date.now() - sentAt;
        const was = this.replyMs.get(frame.length);
        this.replyMs.set(frame.length, was === undefined ? took : was * 0.8 + took * 0.2);
      }
      if (reply === 'ack' && sentAgainAtOnce) await this.dropDuplicateAck(frame.length);
      if (reply === 'ack' || (reply === 'timeout' && silenceEnds)) return attempt;
      sentAgainAtOnce = reply === 'unanswered';
      if (reply === 'timeout' || (reply === 'nak' && Date.now() - lastByteAt >= LOST_FRAME_SILENCE_MS)) this.receiverLostAFrame();
      if (reply === 'nak') {
        nakCount++;
        await new Promise((resolve) => setTimeout(resolve, NAK_SETTLE_MS));
      }
      // The reference receiver NAKs the first EOT on purpose, to confirm it: not a retry.
      if (kind === 'eot' && attempt === 1 && reply === 'nak') continue;
      if (attempt > this.maxRetries) {
        const details: YmodemErrorDetails = { ...where, frame: kind, attempts: attempt };
        const what = describeFrame(kind, where);
        if (nakCount === 0) {
          throw new YmodemError(
            'E_YMODEM_TIMEOUT',
            `the receiver on ${this.link.address} stopped answering at ${what} (${attempt} transmissions) — check the board is still in loady and the line speed matches`,
            details,
          );
        }
        throw new YmodemError(
          'E_YMODEM_RETRIES',
          `the receiver on ${this.link.address} rejected ${what} ${attempt} times — the line is too noisy; lower the baud rate or check the cable`,
          details,
        );
      }
      this.retransmissions++;
      this.options.onEvent?.({ type: 'retry', frame: kind, ...where, reason: reply === 'nak' ? 'nak' : 'timeout' });
    }
  }

  /**
   * Anything still buffered (duplicate 'C's queued before we started, line noise) must not
   * be taken as the answer to the frame about to go out, but a cancel in it still counts.
   */
  private async dropStaleInput(): Promise<void> {
    const pending = this.link.bufferedBytes;
    this.sawCan = false;
    if (pending === 0) return;
    const stale = await this.link.read(pending, 0);
    for (let i = 1; i < stale.length; i++) {
      if (stale[i] === CAN && stale[i - 1] === CAN) throw this.cancelledByReceiver();
    }
  }

  private throwIfAborted(): void {
    if (this.options.signal?.aborted) {
      throw new TransportError('E_TRANSPORT_ABORTED', 'aborted by the caller', { cause: this.options.signal.reason });
    }
  }

  private cancelledByReceiver(): YmodemError {
    return new YmodemError('E_YMODEM_CANCELLED', `the receiver on ${this.link.address} cancelled the transfer (CAN CAN) — see the board's console for why`, {});
  }

  /**
   * What to do while the answer to this transmission is late (see `nudge`). EOT gets nothing:
   * U-Boot takes it only as the first byte it reads, so a filler or a second EOT in front of it
   * would only hide it. The closing block 0 gets fillers but is never sent again at once
   * (U-Boot reads it once, whatever arrives).
   */
  private latePlan(kind: FrameKind, frameLength: number, sentAgainAtOnce: boolean): LatePlan {
    const max = this.options.nudge?.max ?? 0;
    if (max <= 0 || kind === 'eot') return NO_NUDGE;
    const usual = this.replyMs.get(frameLength);
    const waitMs = usual === undefined ? NUDGE_FIRST_MS : Math.min(NUDGE_MAX_MS, Math.max(NUDGE_MIN_MS, 3 * usual + 30));
    // U-Boot does not answer a bad block 0: once the frame is complete more filler is no use.
    const fillers = kind === 'header' ? Math.min(1, max) : max;
    return { fillers, resend: kind !== 'end-of-batch' && !sentAgainAtOnce, waitMs };
  }

  /**
   * ACK, NAK ('C' counts as NAK: U-Boot's way to ask for a resend), timeout (`timeoutMs` after
   * the last byte written), or 'unanswered' (see LatePlan).
   */
  private async awaitReply(timeoutMs: number, plan: LatePlan): Promise<{ reply: Reply; fillers: number; lastByteAt: number }> {
    let lastByteAt = Date.now();
    let fillers = 0;
    for (;;) {
      const deadline = lastByteAt + timeoutMs;
      const late = fillers < plan.fillers || plan.resend;
      const byte = await this.nextControlByte(late ? Math.min(plan.waitMs, deadline - Date.now()) : deadline - Date.now());
      if (byte === undefined) {
        if (Date.now() >= deadline) return { reply: 'timeout', fillers, lastByteAt };
        if (fillers < plan.fillers) {
          fillers++;
          await this.writeFrame(NUDGE_BYTE);
          lastByteAt = Date.now();
          continue;
        }
        if (plan.resend) return { reply: 'unanswered', fillers, lastByteAt };
        continue;
      }
      if (byte === ACK) return { reply: 'ack', fillers, lastByteAt };
      if (byte === NAK || byte === CRC_REQUEST) return { reply: 'nak', fillers, lastByteAt };
    }
  }

  /**
   * A frame sent twice may be ACKed twice (U-Boot ACKs a repeat of the block it already has, at
   * once): that second ACK must not pass for the answer to the next frame.
   */
  private async dropDuplicateAck(frameLength: number): Promise<void> {
    const usual = this.replyMs.get(frameLength);
    const waitMs = Math.min(DUPLICATE_ACK_MS, Math.max(NUDGE_MIN_MS, 3 * (usual ?? NUDGE_MIN_MS)));
    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline) {
      const byte = await this.nextControlByte(deadline - Date.now());
      if (byte === undefined || byte === ACK) return;
    }
  }

  /**
   * Next byte from the receiver, or undefined after `timeoutMs`. Throws on CAN CAN.
   * Other bytes (line noise, console text) are returned for the caller to ignore.
   */
  private async nextControlByte(timeoutMs: number): Promise<number | undefined> {
    if (timeoutMs <= 0) return undefined;
    const byte = await this.link.readByte(timeoutMs, this.options.signal);
    if (byte === undefined) return undefined;
    if (byte === CAN) {
      if (this.sawCan) throw this.cancelledByReceiver();
      this.sawCan = true;
      return byte;
    }
    this.sawCan = false;
    return byte;
  }

  private async writeFrame(frame: Uint8Array): Promise<void> {
    await this.link.write(frame);
    this.wireBytes += frame.length;
    if (frame.length > 1) this.framesSent++;
  }

  /** A short synchronous pause (Atomics.wait: no timer has sub-millisecond resolution). */
  private turnaroundPause(): void {
    if (this.guardUs > 0) Atomics.wait(GUARD_CELL, 0, 0, this.guardUs / 1000);
  }

  /**
   * The receiver lost a whole frame: most likely it purged its input after its last answer
   * (lrzsz does) and our frame arrived before the purge. Pause before frames from now on, and
   * longer each time it happens again (a slower machine, a busier receiver), up to 8 ms.
   */
  private receiverLostAFrame(): void {
    if (!this.autoGuard || this.guardUs >= MAX_GUARD_US) return;
    this.guardUs = this.guardUs === 0 ? AUTO_GUARD_US : Math.min(MAX_GUARD_US, this.guardUs * 2);
    this.options.onEvent?.({ type: 'turnaround-guard', microseconds: this.guardUs });
  }

  private adaptBlockLength(sentLength: BlockLength, attempts: number): void {
    if (!this.adaptive || this.maxBlockLength === 128) return;
    if (sentLength === 1024 && attempts >= DOWNSHIFT_AFTER_ATTEMPTS) {
      this.blockLength = 128;
      this.cleanSmallBlocks = 0;
      this.options.onEvent?.({ type: 'block-size', length: 128 });
    } else if (this.blockLength === 128 && sentLength === 128) {
      this.cleanSmallBlocks = attempts === 1 ? this.cleanSmallBlocks + 1 : 0;
      if (this.cleanSmallBlocks >= UPSHIFT_AFTER_CLEAN_BLOCKS) {
        this.blockLength = 1024;
        this.options.onEvent?.({ type: 'block-size', length: 1024 });
      }
    }
  }

  /** Maps any failure to a YmodemError and, where the receiver may still be listening, cancels it. */
  private async fail(err: unknown): Promise<YmodemError> {
    let error: YmodemError;
    if (err instanceof YmodemError) {
      error = err;
    } else if (err instanceof TransportError && err.code === 'E_TRANSPORT_ABORTED') {
      error = new YmodemError('E_YMODEM_ABORTED', `the transfer on ${this.link.address} was aborted — the receiver was sent CAN`, {}, { cause: err });
    } else if (err instanceof TransportError) {
      error = new YmodemError('E_YMODEM_TRANSPORT', `the link ${this.link.address} failed during YMODEM: ${err.message}`, {}, { cause: err });
    } else {
      throw err;
    }
    Object.assign(error.details, { bytesAcknowledged: this.acknowledged });
    const receiverListening = this.started && error.code !== 'E_YMODEM_CANCELLED' && error.code !== 'E_YMODEM_TRANSPORT';
    if (receiverListening && this.link.isOpen) {
      try {
        await this.writeFrame(CANCEL_SEQUENCE);
        if (this.frameInFlight) {
          // The receiver was still taking in our last frame, and rb discards its input
          // right after answering one; say it again once it is listening.
          await new Promise((resolve) => setTimeout(resolve, CANCEL_REPEAT_MS));
          await this.writeFrame(CANCEL_SEQUENCE);
        }
      } catch {
        // The receiver will time out on its own; the original error is what matters.
      }
    }
    return error;
  }
}

/** A 128-byte block on the wire. */
function smallFrameLength(check: CheckMode): number {
  return 128 + frameOverhead(check);
}

function validateFile(file: YmodemFile): void {
  if (file.name.length === 0) {
    throw new YmodemError('E_YMODEM_FILE', 'a YMODEM file name must not be empty (an empty block 0 ends the batch) — give the file a name', {});
  }
  if (file.name.includes('\0')) {
    throw new YmodemError('E_YMODEM_FILE', `the file name ${JSON.stringify(file.name)} contains NUL — remove it`, { file: file.name });
  }
  const header = encodeHeaderPayload({ name: file.name, size: file.data.length, mtime: file.mtime ? file.mtime.getTime() / 1000 : undefined });
  if (header.length >= 1024) {
    throw new YmodemError('E_YMODEM_FILE', `the file name ${JSON.stringify(file.name.slice(0, 40))}... is too long for YMODEM block 0 — use a name under 1000 bytes`, {
      file: file.name,
    });
  }
}

function describeFrame(kind: FrameKind, where: { file?: string; block?: number }): string {
  switch (kind) {
    case 'header':
      return `the header (block 0) of ${where.file}`;
    case 'data':
      return `data block ${where.block} of ${where.file}`;
    case 'eot':
      return `the end of ${where.file} (EOT)`;
    case 'end-of-batch':
      return 'the end-of-batch block';
  }
}
