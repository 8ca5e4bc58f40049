/**
 * One interface for a byte link to a board: a serial port, a pty, QEMU's chardev socket,
 * or a test double. Protocol code (the YMODEM sender, the U-Boot console driver) sees
 * only this interface.
 *
 * Reading is pull-based over a receive buffer: bytes that arrive while nobody is reading
 * are kept, so the console driver can hand the link to the YMODEM sender without losing
 * the receiver's first 'C'. Only one read may be pending at a time.
 */
export interface Transport {
  /** What was opened, e.g. `/dev/ttyUSB0` or `unix:/tmp/qemu-serial.sock`. */
  readonly address: string;
  readonly isOpen: boolean;
  /** Bytes received and not yet read. */
  readonly bufferedBytes: number;

  open(): Promise<void>;
  /** Idempotent. A pending read rejects with E_TRANSPORT_CLOSED once the buffer is empty. */
  close(): Promise<void>;

  /** Resolves once the OS has accepted every byte (backpressure); see `drain` for "on the wire". */
  write(data: Uint8Array): Promise<void>;
  /** Resolves once previously written bytes have left the OS output queue (tcdrain for a tty). */
  drain(): Promise<void>;

  /**
   * Up to `maxBytes` bytes, as soon as at least one is available; an empty array when
   * `timeoutMs` passes first. Buffered bytes are returned even after the link closed.
   */
  read(maxBytes: number, timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array>;
  /** One byte, or `undefined` on timeout. */
  readByte(timeoutMs: number, signal?: AbortSignal): Promise<number | undefined>;
  /**
   * Everything up to and including the first occurrence of `needle`; the rest stays buffered.
   * Throws E_TRANSPORT_TIMEOUT (with the bytes seen in `received`, which stay buffered).
   */
  readUntil(needle: string | Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array>;
  /** Drops buffered input and returns how many bytes were dropped. */
  discardInput(): number;
  /** Observe every received chunk (transcripts, echo); does not consume. Returns an unsubscribe. */
  onData(listener: (chunk: Uint8Array) => void): () => void;
}

export interface OpenTransportOptions {
  /** Line speed for serial ports and ptys; ignored for sockets. Default 115200. */
  baud?: number;
}
