/** What can go wrong in `signet flash`. Closed set; callers branch on `code` (and `reason`). */
import { CodedError } from '../util/errors';

export type FlashErrorCode =
  /** The disk image does not verify for this board (`reason` says why). Nothing was sent. */
  | 'E_FLASH_REFUSED'
  /** The trust material (root.json, key DTB, keys folder) cannot be used. Nothing was sent. */
  | 'E_FLASH_TRUST'
  /** The board file cannot drive a flash (RAM window too small for one block, odd sizes). */
  | 'E_FLASH_BOARD'
  /**
   * NOR flash: the plan does not fit the bank, or a chunk is not whole erase blocks (erasing it
   * would wipe bytes outside it). Nothing was sent.
   */
  | 'E_FLASH_ERASE_LAYOUT'
  /** The disk image file changed after it was verified. */
  | 'E_FLASH_DISK_CHANGED'
  /** A chunk could not be moved into the board's RAM intact on any attempt (YMODEM, unzip, CRC of RAM). */
  | 'E_FLASH_TRANSFER'
  /** What the board read back from its storage differs from the image, on every attempt. */
  | 'E_FLASH_READBACK'
  /**
   * The board cannot save its environment (serial.envMode "check") and the one it has is not
   * serial.env: it would not boot the disk. Found before anything was written.
   */
  | 'E_FLASH_ENV'
  /** U-Boot failed a storage or environment command on every attempt. */
  | 'E_FLASH_COMMAND'
  /** Stopped by the user (Ctrl-C): the board is left at its prompt, not reset. */
  | 'E_FLASH_INTERRUPTED'
  /** The console could not be driven for a chunk (output lost every time, echo never right). */
  | 'E_FLASH_CONSOLE'
  /**
   * The line damages so many bytes that the flash cannot make progress within its bounds
   * (measured from retyped lines and resent YMODEM frames; `errorRate` holds the estimate).
   */
  | 'E_FLASH_LINE';

export interface FlashErrorDetails {
  /** The code of the check that refused the disk (E_BOARD, E_SIGNATURE, E_FIT_SIGNATURE_INVALID, ...). */
  reason?: string;
  /** Byte offset and length of the chunk that failed. */
  offset?: number;
  bytes?: number;
  attempts?: number;
  /** E_FLASH_LINE: the estimated share of bytes damaged on the line (0..1). */
  errorRate?: number;
}

export class FlashError extends CodedError<FlashErrorCode> {
  readonly details: FlashErrorDetails;

  constructor(code: FlashErrorCode, message: string, hint: string, details: FlashErrorDetails = {}, cause?: unknown) {
    super('FlashError', code, message, hint, cause);
    this.details = details;
  }

  get reason(): string | undefined {
    return this.details.reason;
  }
}
