import { hintedError } from '../util/errors';

export type KeyErrorCode =
  | 'E_KEY_FILE' // missing, unreadable or not a key of the expected kind
  | 'E_PASSPHRASE' // encrypted key and no (or a wrong) passphrase
  | 'E_KEYS_EXIST' // refusing to overwrite existing keys
  | 'E_KEY_ARGS' // impossible threshold/count
  | 'E_KEY_ROLE' // a role name that is not root, targets, snapshot or timestamp
  | 'E_KEY_PKCS11'; // a PKCS#11 URI, module, token or key that cannot be used

const HINTS: Record<KeyErrorCode, string> = {
  E_KEY_FILE: 'pass a key file written by `signet keys init`',
  E_PASSPHRASE: 'set SIGNET_PASSPHRASE or run in a terminal to be asked for it',
  E_KEYS_EXIST: 'choose an empty --dir; existing keys are never overwritten',
  E_KEY_ARGS: 'use 1 ≤ --threshold ≤ --count ≤ 16',
  E_KEY_ROLE: 'use --role root, targets, snapshot or timestamp (or fit, ca for a key in a token)',
  E_KEY_PKCS11: 'check the pkcs11: URI (token=, object= or id=, module-path=) and the PIN in SIGNET_PKCS11_PIN',
};

export class KeyError extends hintedError<KeyErrorCode>('KeyError', HINTS) {}
