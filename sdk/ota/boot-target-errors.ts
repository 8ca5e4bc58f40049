/** What can go wrong with a boot image as a release (sdk/ota/boot-target.ts). A closed set. */
import { hintedError } from '../util/errors';

export type BootTargetErrorCode =
  | 'E_BOOT_RELEASE' // the FIT carries no (or a malformed) signet,board / signet,version / signet,security-counter
  | 'E_BOOT_BOARD' // the FIT is for another board, or its arch is not the board's
  | 'E_BOOT_ROLLBACK' // its security counter is below the device's boot floor
  | 'E_BOOT_NO_SLOTS' // the device has no A/B boot slots (no valid boot environment)
  | 'E_BOOT_TOO_LARGE' // larger than a boot slot
  | 'E_BOOT_READBACK' // the boot slot read back differs from what was written
  | 'E_BOOT_BUSY' // a boot trial is still waiting for its confirm
  | 'E_BOOT_FIT_KEY'; // no FIT public key to verify boot images with

const HINTS: Record<BootTargetErrorCode, string> = {
  E_BOOT_RELEASE: 'build the boot image with `signet fit --version V --security-counter N` (or `signet disk`), which signs its release fields',
  E_BOOT_BOARD: 'publish a boot image built for this board',
  E_BOOT_ROLLBACK: 'publish a boot image with a higher --security-counter',
  E_BOOT_NO_SLOTS: 'make the device\'s disk with `signet disk --boot-ab`',
  E_BOOT_TOO_LARGE: 'shrink the boot image; it must fit a boot partition',
  E_BOOT_READBACK: 'the flash did not keep what was written; check the medium',
  E_BOOT_BUSY: 'wait for the boot trial to confirm or fall back',
  E_BOOT_FIT_KEY: 'give the server the FIT public key (fit-pub.dtb from `signet server keys`)',
};

export class BootTargetError extends hintedError<BootTargetErrorCode>('BootTargetError', HINTS) {}
