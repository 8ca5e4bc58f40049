/** What can go wrong while driving a U-Boot console. Closed set; callers branch on `code`. */
import { CodedError } from '../util/errors';

export type UbootErrorCode =
  /** No U-Boot prompt answered within the attach time (board off, running Linux, wrong port or baud). */
  | 'E_UBOOT_NO_PROMPT'
  /** A command line could not be typed intact (its echo never matched) within the retry limit. */
  | 'E_UBOOT_LINE'
  /** A command ran, but its completion marker never came back (output lost on the line); the outcome is unknown. */
  | 'E_UBOOT_LOST_OUTPUT'
  /** A command did not finish within its time bound. */
  | 'E_UBOOT_TIMEOUT'
  /** U-Boot reported a failure: non-zero status, "Unknown command", "## Error", "ERROR", "Usage:". */
  | 'E_UBOOT_COMMAND'
  /** A command's output did not have the expected form (e.g. no `crc32 ... ==> xxxxxxxx` line). */
  | 'E_UBOOT_OUTPUT'
  /** A value cannot be passed to U-Boot safely (quote, newline, NUL, or a name U-Boot does not allow). */
  | 'E_UBOOT_VALUE'
  /** The byte link failed underneath (closed, write error); `cause` holds the TransportError. */
  | 'E_UBOOT_LINK';

export class UbootError extends CodedError<UbootErrorCode> {
  /** The last part of the console transcript, for whoever debugs the failure (not printed by the CLI). */
  readonly transcript: string;

  constructor(code: UbootErrorCode, message: string, hint: string, options: { cause?: unknown; transcript?: string } = {}) {
    super('UbootError', code, message, hint, options.cause);
    this.transcript = options.transcript ?? '';
  }
}
