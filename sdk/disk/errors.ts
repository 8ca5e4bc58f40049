/** What can go wrong while building or booting a board's boot image and disk image. Closed set. */
import { CodedError, SignetError, isSignetError } from '../util/errors';

export type DiskErrorCode =
  | 'E_DISK_LAYOUT' // the board's flash layout cannot hold a GPT or the images given
  | 'E_DISK_TOO_LARGE' // an image does not fit its partition
  | 'E_DISK_NOT_A_DISK' // the file given to `run` is not a disk image for this board
  | 'E_CPIO_ENTRY' // an initramfs entry is malformed (name, duplicate, missing parent)
  | 'E_KERNEL_PACKAGE' // the kernel package does not hold exactly one kernel, its config and modules
  | 'E_KERNEL_MODULE' // a kernel module is missing, malformed, or its dependencies do not resolve
  | 'E_FIT_KEY' // keys/fit.key is missing or not an RSA-2048 private key
  | 'E_QEMU_MISSING' // qemu-system-* or U-Boot is not installed
  | 'E_QEMU_FAILED' // QEMU exited with an error before or while booting
  | 'E_RUN_TIMEOUT' // the guest did not power off within the time given
  | 'E_RUN_AB' // a `signet run` option that cannot boot an A/B disk (--direct, --halt): only U-Boot picks its boot slot
  | 'E_BOARD_NO_QEMU' // the board cannot be emulated (no qemu section)
  | 'E_HYPERVISOR' // no runner for this board's hypervisor
  | 'E_UBOOT_ENV' // a U-Boot environment does not fit or holds a bad variable
  | 'E_GZIP' // gzip (Debian's gzip package) is missing or failed
  | 'E_XZ' // xz (Debian's xz-utils package) is missing or failed
  | 'E_ZSTD' // zstd (Debian's zstd package) is missing or failed
  | 'E_BOOT_BYTECODE' // the build machine's signet-host could not compile the boot stage to bytecode
  | 'E_LOAD_OVERLAP' // the board's loadAddresses make kernel, ramdisk, device tree or FIT overlap in RAM
  | 'E_BOARD_NETWORK' // board.network cannot be turned into /init's network settings
  | 'E_FORWARD'; // a `signet run --forward` is not [tcp:|udp:]HOST_PORT:GUEST_PORT, or forwards a host port twice

export class DiskError extends CodedError<DiskErrorCode> {
  constructor(code: DiskErrorCode, message: string, hint: string, cause?: unknown) {
    super('DiskError', code, message, hint, cause);
  }
}

/**
 * Errors from layers that throw plain `Error`s with a stable `code` (sdk/fit, sdk/build/debian,
 * bootloader/native) as SignetErrors with the same code, so the CLI prints one line for them.
 * Their messages already read "what was wrong — what to do".
 */
export function asSignetError(e: unknown): unknown {
  if (isSignetError(e)) return e;
  const code = e && typeof e === 'object' ? (e as { code?: unknown }).code : undefined;
  if (typeof code !== 'string' || !/^E_[A-Z0-9_]+$/.test(code)) return e;
  const message = (e as Error).message ?? String(e);
  const cut = message.indexOf(' — ');
  return cut < 0
    ? new SignetError(code, message, 'see the message above', e)
    : new SignetError(code, message.slice(0, cut), message.slice(cut + 3), e);
}
