/** Stable codes for everything that can go wrong on a byte link. Callers branch on these. */
export type TransportErrorCode =
  /** The address is not `unix:/path` or a device path. */
  | 'E_TRANSPORT_ADDRESS'
  /** The OS refused to open the port or socket (missing, busy, permissions). */
  | 'E_TRANSPORT_OPEN'
  /** The link is closed (locally, or the peer hung up) and has no buffered bytes left. */
  | 'E_TRANSPORT_CLOSED'
  /** The OS reported a write or drain failure. */
  | 'E_TRANSPORT_WRITE'
  /** `readUntil` did not see what it waited for in time. */
  | 'E_TRANSPORT_TIMEOUT'
  /** A second read was started while one was pending; a link has one reader at a time. */
  | 'E_TRANSPORT_BUSY'
  /** The caller's AbortSignal fired while a read was pending. */
  | 'E_TRANSPORT_ABORTED';

export class TransportError extends Error {
  readonly code: TransportErrorCode;
  /** Bytes received before a `readUntil` timeout; empty otherwise. */
  readonly received: Uint8Array;

  constructor(
    code: TransportErrorCode,
    message: string,
    options: { cause?: unknown; received?: Uint8Array } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = this.constructor.name;
    this.code = code;
    this.received = options.received ?? new Uint8Array(0);
  }
}
