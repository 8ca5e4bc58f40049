/** Stable codes for a failed YMODEM send. Callers branch on these, never on message text. */
export type YmodemErrorCode =
  /** The receiver never asked for data, or stopped answering for every retry of one frame. */
  | 'E_YMODEM_TIMEOUT'
  /** The receiver sent CAN CAN. */
  | 'E_YMODEM_CANCELLED'
  /** The caller's AbortSignal fired; we sent CAN to the receiver. */
  | 'E_YMODEM_ABORTED'
  /** One frame was rejected (NAK / 'C' / garbage) more times than the retry limit. */
  | 'E_YMODEM_RETRIES'
  /** The file cannot be described in a YMODEM header (empty name, NUL in name, name too long). */
  | 'E_YMODEM_FILE'
  /** The link failed underneath (closed, write error); `cause` holds the TransportError. */
  | 'E_YMODEM_TRANSPORT';

export interface YmodemErrorDetails {
  /** Name of the file being sent, when the failure belongs to one. */
  file?: string;
  /** Which frame failed: 'handshake', 'header', 'data', 'eot' or 'end-of-batch'. */
  frame?: 'handshake' | 'header' | 'data' | 'eot' | 'end-of-batch';
  /** 1-based index of the data block within the file (not the 8-bit wire number). */
  block?: number;
  /** Transmissions of that frame, including the first. */
  attempts?: number;
  /** Payload bytes the receiver acknowledged before the failure, over the whole batch. */
  bytesAcknowledged?: number;
}

export class YmodemError extends Error {
  readonly code: YmodemErrorCode;
  readonly details: YmodemErrorDetails;

  constructor(code: YmodemErrorCode, message: string, details: YmodemErrorDetails = {}, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = this.constructor.name;
    this.code = code;
    this.details = details;
  }
}
