/** What can go wrong while building a board's kernel from Debian's source. Closed set. */
import { CodedError } from '../util/errors';

export type KernelErrorCode =
  | 'E_KERNEL_CONFIG' // the board's fragment is malformed, or an option it sets is unknown or lost its value in Kconfig
  | 'E_KERNEL_SOURCE' // Debian's linux-source package for the board's version is not installed or unreadable
  | 'E_KERNEL_TOOLCHAIN' // make, the cross compiler, flex, bison or bc is missing
  | 'E_KERNEL_BUILD'; // make failed (the last lines of its output are in the message)

export class KernelError extends CodedError<KernelErrorCode> {
  constructor(code: KernelErrorCode, message: string, hint: string, cause?: unknown) {
    super('KernelError', code, message, hint, cause);
  }
}
