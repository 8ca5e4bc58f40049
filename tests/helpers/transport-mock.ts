/**
 * Test double for `Transport`, in the manner of @serialport/binding-mock: the same
 * interface plus controls to play the other end. Create one per test.
 *
 *   const link = new MockTransport();
 *   link.onWrite((bytes) => { if (bytes[0] === SOH) link.emitData([ACK]); });
 */
import { BufferedTransport } from '../../sdk/flash/transport-buffered';
import { TransportError } from '../../sdk/flash/transport-errors';

export class MockTransport extends BufferedTransport {
  readonly address: string;
  /** Every write, in order, as copies. */
  readonly writes: Uint8Array[] = [];
  private readonly writeListeners = new Set<(data: Uint8Array) => void>();
  private failNextWrite: Error | undefined;

  constructor(address = 'mock:0') {
    super();
    this.address = address;
  }

  /** Opens the mock; convenience for tests. */
  static async open(address?: string): Promise<MockTransport> {
    const link = new MockTransport(address);
    await link.open();
    return link;
  }

  /** Bytes "sent by the board": land in the receive buffer as one chunk. */
  emitData(data: Uint8Array | readonly number[] | string): void {
    const bytes =
      typeof data === 'string' ? new TextEncoder().encode(data) : data instanceof Uint8Array ? data.slice() : Uint8Array.from(data);
    this.receive(bytes);
  }

  /** The peer hangs up (cable pulled, QEMU exited). */
  hangUp(): void {
    this.linkClosed(new Error('mock peer hung up'));
  }

  /** The last write, or undefined before any. */
  get lastWrite(): Uint8Array | undefined {
    return this.writes[this.writes.length - 1];
  }

  /** All writes concatenated. */
  get written(): Uint8Array {
    const total = this.writes.reduce((n, w) => n + w.length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const w of this.writes) {
      out.set(w, at);
      at += w.length;
    }
    return out;
  }

  /** Called synchronously for each write after it is logged; use to script a peer. */
  onWrite(listener: (data: Uint8Array) => void): () => void {
    this.writeListeners.add(listener);
    return () => this.writeListeners.delete(listener);
  }

  /** The next write rejects with E_TRANSPORT_WRITE. */
  failWrite(cause: Error = new Error('mock write failure')): void {
    this.failNextWrite = cause;
  }

  protected async openLink(): Promise<void> {}

  protected async closeLink(): Promise<void> {}

  protected async writeLink(data: Uint8Array): Promise<void> {
    if (this.failNextWrite) {
      const cause = this.failNextWrite;
      this.failNextWrite = undefined;
      throw new TransportError('E_TRANSPORT_WRITE', `write to ${this.address} failed — check the link`, { cause });
    }
    const copy = data.slice();
    this.writes.push(copy);
    for (const listener of this.writeListeners) listener(copy);
  }

  protected async drainLink(): Promise<void> {}
}
