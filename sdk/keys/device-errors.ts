/** What can go wrong issuing or loading a device, admin or server identity (X.509). */
import { hintedError } from '../util/errors';

export type IdentityErrorCode =
  | 'E_IDENTITY_ARGS' // a bad device id, host name or lifetime
  | 'E_IDENTITY_EXISTS' // refusing to overwrite an identity folder
  | 'E_IDENTITY_FILE' // identity folder missing a file or holding something else
  | 'E_CA_FILE'; // vendor CA certificate or key missing or unreadable

const HINTS: Record<IdentityErrorCode, string> = {
  E_IDENTITY_ARGS: 'use an id of letters, digits, ".", "_" or "-" (1–64 characters)',
  E_IDENTITY_EXISTS: 'choose an empty --out folder; identities are never overwritten',
  E_IDENTITY_FILE: 'pass a folder written by `signet device enroll`',
  E_CA_FILE: 'pass --keys with vendor-ca.crt and vendor-ca.key from `signet keys init`',
};

export class IdentityError extends hintedError<IdentityErrorCode>('IdentityError', HINTS) {}
