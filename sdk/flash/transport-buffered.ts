/** The shared part of every link adapter: see BufferedTransport. */
import { TransportError } from './transport-errors';
import type { Transport } from './transport-types';

const EMPTY = new Uint8Array(0);

/**
 * The receive buffer, reads with timeouts and open/closed bookkeeping shared by every
 * adapter (transport-serial.ts, transport-unix.ts, the test doubles in tests/helpers). An adapter implements the four `*Link` methods and calls `receive()` for
 * incoming bytes and `linkClosed()` when the peer goes away.
 */
export abstract class BufferedTransport implements Transport {
  abstract readonly address: string;

  private store: Uint8Array = new Uint8Array(4096);
  private start = 0;
  private end = 0;
  private opened = false;
  private closedError: TransportError | undefined;
  private wake: (() => void) | undefined;
  private readonly listeners = new Set<(chunk: Uint8Array) => void>();

  protected abstract openLink(): Promise<void>;
  protected abstract closeLink(): Promise<void>;
  protected abstract writeLink(data: Uint8Array): Promise<void>;
  protected abstract drainLink(): Promise<void>;

  get isOpen(): boolean {
    return this.opened;
  }

  get bufferedBytes(): number {
    return this.end - this.start;
  }

  async open(): Promise<void> {
    if (this.opened) return;
    await this.openLink();
    this.opened = true;
    this.closedError = undefined;
  }

  async close(): Promise<void> {
    if (!this.opened) return;
    this.opened = false;
    try {
      await this.closeLink();
    } finally {
      this.linkClosed();
    }
  }

  async write(data: Uint8Array): Promise<void> {
    if (!this.opened) {
      throw new TransportError('E_TRANSPORT_CLOSED', `cannot write to ${this.address}: the link is closed — open it first`);
    }
    await this.writeLink(data);
  }

  async drain(): Promise<void> {
    if (!this.opened) {
      throw new TransportError('E_TRANSPORT_CLOSED', `cannot drain ${this.address}: the link is closed — open it first`);
    }
    await this.drainLink();
  }

  onData(listener: (chunk: Uint8Array) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  discardInput(): number {
    const n = this.end - this.start;
    this.start = this.end = 0;
    return n;
  }

  async read(maxBytes: number, timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (this.end === this.start) {
      if (!(await this.waitForData(0, deadline, signal))) return EMPTY;
    }
    const n = Math.min(maxBytes, this.end - this.start);
    const out = this.store.slice(this.start, this.start + n);
    this.consume(n);
    return out;
  }

  async readByte(timeoutMs: number, signal?: AbortSignal): Promise<number | undefined> {
    if (this.end === this.start) {
      const deadline = Date.now() + timeoutMs;
      while (this.end === this.start) {
        if (!(await this.waitForData(0, deadline, signal))) return undefined;
      }
    }
    const b = this.store[this.start]!;
    this.consume(1);
    return b;
  }

  async readUntil(needle: string | Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array> {
    const pattern = typeof needle === 'string' ? new TextEncoder().encode(needle) : needle;
    if (pattern.length === 0) return EMPTY;
    const deadline = Date.now() + timeoutMs;
    let searchFrom = 0;
    for (;;) {
      const at = indexOf(this.store, pattern, this.start + searchFrom, this.end);
      if (at >= 0) {
        const n = at + pattern.length - this.start;
        const out = this.store.slice(this.start, this.start + n);
        this.consume(n);
        return out;
      }
      const have = this.end - this.start;
      searchFrom = Math.max(0, have - pattern.length + 1);
      let gotData: boolean;
      try {
        gotData = await this.waitForData(have, deadline, signal);
      } catch (err) {
        if (err instanceof TransportError && err.code === 'E_TRANSPORT_CLOSED') {
          throw new TransportError('E_TRANSPORT_CLOSED', err.message, {
            cause: err.cause,
            received: this.store.slice(this.start, this.end),
          });
        }
        throw err;
      }
      if (!gotData) {
        throw new TransportError(
          'E_TRANSPORT_TIMEOUT',
          `${this.address} did not send ${JSON.stringify(new TextDecoder().decode(pattern))} within ${timeoutMs} ms — check the board is at the expected prompt`,
          { received: this.store.slice(this.start, this.end) },
        );
      }
    }
  }

  /** Adapters call this for every chunk the OS delivers. */
  protected receive(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    for (const listener of this.listeners) listener(chunk);
    this.append(chunk);
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Adapters call this when the peer hangs up or the OS reports the port gone. */
  protected linkClosed(cause?: unknown): void {
    this.opened = false;
    this.closedError ??= new TransportError(
      'E_TRANSPORT_CLOSED',
      `${this.address} is closed — reopen the link (was the board reset or the cable pulled?)`,
      cause === undefined ? {} : { cause },
    );
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /**
   * Waits until more than `have` bytes are buffered: true when they are, false on timeout.
   * Throws when the link closed (and no new bytes came) or the signal fired.
   */
  private async waitForData(have: number, deadline: number, signal: AbortSignal | undefined): Promise<boolean> {
    if (this.end - this.start > have) return true;
    if (this.closedError) throw this.closedError;
    if (signal?.aborted) throw abortError(this.address, signal);
    if (this.wake) {
      throw new TransportError('E_TRANSPORT_BUSY', `a read on ${this.address} is already pending — read from one place at a time`);
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) return false;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        if (this.wake === done) this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, remaining);
      signal?.addEventListener('abort', done, { once: true });
      this.wake = done;
    });
    if (this.end - this.start > have) return true;
    if (this.closedError) throw this.closedError;
    if (signal?.aborted) throw abortError(this.address, signal);
    return Date.now() < deadline;
  }

  private append(chunk: Uint8Array): void {
    const used = this.end - this.start;
    if (this.end + chunk.length > this.store.length) {
      if (used + chunk.length <= this.store.length / 2) {
        this.store.copyWithin(0, this.start, this.end);
      } else {
        const grown = new Uint8Array(Math.max(this.store.length * 2, used + chunk.length));
        grown.set(this.store.subarray(this.start, this.end));
        this.store = grown;
      }
      this.start = 0;
      this.end = used;
    }
    this.store.set(chunk, this.end);
    this.end += chunk.length;
  }

  private consume(n: number): void {
    this.start += n;
    if (this.start === this.end) this.start = this.end = 0;
  }
}

function abortError(address: string, signal: AbortSignal): TransportError {
  return new TransportError('E_TRANSPORT_ABORTED', `read on ${address} was aborted by the caller`, {
    cause: signal.reason,
  });
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number, to: number): number {
  const last = to - needle.length;
  const first = needle[0];
  outer: for (let i = from; i <= last; i++) {
    if (hay[i] !== first) continue;
    for (let j = 1; j < needle.length; j++) {
      if (hay[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}
