import { hintedError } from '../util/errors';

export type KeyErrorCode =
  | 'E_KEY_FILE' // missing, unreadable or not a key of the expected kind
  | 'E_PASSPHRASE' // encrypted key and no (or a wrong) passphrase
  | 'E_KEYS_EXIST' // refusing to overwrite existing keys
  | 'E_KEY_ARGS'; // impossible threshold/count

const HINTS: Record<KeyErrorCode, string> = {
  E_KEY_FILE: 'pass a key file written by `signet keys init`',
  E_PASSPHRASE: 'set SIGNET_PASSPHRASE or run in a terminal to be asked for it',
  E_KEYS_EXIST: 'choose an empty --dir; existing keys are never overwritten',
  E_KEY_ARGS: 'use 1 ≤ --threshold ≤ --count ≤ 16',
};

export class KeyError extends hintedError<KeyErrorCode>('KeyError', HINTS) {}
