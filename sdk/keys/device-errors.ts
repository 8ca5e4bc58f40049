/** What can go wrong issuing or loading a device, admin or server identity (X.509). */
import { hintedError } from '../util/errors';

export type IdentityErrorCode =
  | 'E_IDENTITY_ARGS' // a bad device id, host name or lifetime
  | 'E_IDENTITY_BOARD' // a device without a board, a bad channel, or an admin given one
  | 'E_IDENTITY_EXISTS' // refusing to overwrite an identity folder
  | 'E_IDENTITY_FILE' // identity folder missing a file or holding something else
  | 'E_IDENTITY_KEY' // client.key is not a readable (unencrypted) private key
  | 'E_IDENTITY_MISMATCH' // client.key is not the key of client.crt
  | 'E_CA_FILE'; // vendor CA certificate or key missing or unreadable

const HINTS: Record<IdentityErrorCode, string> = {
  E_IDENTITY_ARGS: 'use an id of letters, digits, ".", "_" or "-" (1–64 characters)',
  E_IDENTITY_BOARD: 'a device is enrolled for one board: `signet device enroll --id ID --board BOARD [--channel NAME]` (channel: a-z, 0-9, "-"; admins take neither)',
  E_IDENTITY_EXISTS: 'choose an empty --out folder; identities are never overwritten',
  E_IDENTITY_FILE: 'pass a folder written by `signet device enroll`',
  E_IDENTITY_KEY: 'client.key must be the key `signet device enroll` wrote into that folder; enroll again if it is lost',
  E_IDENTITY_MISMATCH: 'client.key and client.crt come from different enrolments; use one folder as `signet device enroll` wrote it, or enroll again',
  E_CA_FILE: 'pass --keys with vendor-ca.crt and vendor-ca.key from `signet keys init`',
};

export class IdentityError extends hintedError<IdentityErrorCode>('IdentityError', HINTS) {}
