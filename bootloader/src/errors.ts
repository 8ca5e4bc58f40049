/** Why the boot stage refused, fell back, or would not stage an update. Closed set. */
import { CodedError } from '../../sdk/util/errors';

export type BootErrorCode =
  | 'E_STATE_CORRUPT' // no valid copy of the boot state: rebuilt from what verifies
  | 'E_TRIAL_EXHAUSTED' // a trial slot used all its tries without confirm()
  | 'E_NO_BOOTABLE_SLOT' // neither slot verifies: recovery
  | 'E_SLOT_EMPTY' // the slot holds no image
  | 'E_STAGE_READBACK' // what was written does not read back as the verified image
  | 'E_STAGE_BUSY' // an update is already waiting for its trial boot
  | 'E_NOT_TRIAL' // confirm() when not running a trial slot
  | 'E_APP_CRASHED' // the app threw before confirming
  | 'E_POWER_CUT'; // the flash test double cut power (tests only)

export class BootError extends CodedError<BootErrorCode> {
  constructor(code: BootErrorCode, message: string, cause?: unknown) {
    super('BootError', code, message, '', cause);
  }
}

export function errorCode(e: unknown): string {
  const c = e && typeof e === 'object' ? (e as { code?: unknown }).code : undefined;
  return typeof c === 'string' ? c : 'E_INTERNAL';
}
