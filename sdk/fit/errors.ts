// Everything that can go wrong in sdk/fit. Callers branch on `code` or on the
// class, never on message text. Messages are one line: what was wrong — what to do.
import { unhintedError } from '../util/errors';

export type FdtErrorCode =
  | 'E_FDT_BAD_MAGIC'
  | 'E_FDT_BAD_VERSION'
  | 'E_FDT_TRUNCATED'
  | 'E_FDT_TRAILING_DATA'
  | 'E_FDT_TOO_LARGE'
  | 'E_FDT_BAD_OFFSET'
  | 'E_FDT_BAD_TOKEN'
  | 'E_FDT_BAD_STRING'
  | 'E_FDT_BAD_NAME'
  | 'E_FDT_NESTING'
  | 'E_FDT_BAD_STRUCTURE'
  | 'E_FDT_LIMIT'
  | 'E_FDT_BAD_VALUE'
  | 'E_FDT_NOT_FOUND';

export class FdtError extends unhintedError<FdtErrorCode>('FdtError') {}

export type FitErrorCode =
  // building
  | 'E_FIT_BAD_INPUT'
  | 'E_FIT_BAD_SIGNATURE_LENGTH'
  // reading and verifying
  | 'E_FIT_NOT_A_FIT'
  | 'E_FIT_NO_CONFIG'
  | 'E_FIT_UNIT_ADDRESS'
  | 'E_FIT_MISSING_IMAGE'
  | 'E_FIT_EXTERNAL_DATA'
  | 'E_FIT_NO_HASH'
  | 'E_FIT_UNSUPPORTED_ALGO'
  | 'E_FIT_UNSUPPORTED_COMPRESSION'
  | 'E_FIT_HASH_MISMATCH'
  | 'E_FIT_NO_SIGNATURE'
  | 'E_FIT_HASHED_NODES_MISMATCH'
  | 'E_FIT_BAD_HASHED_STRINGS'
  | 'E_FIT_SIGNATURE_INVALID'
  | 'E_FIT_NO_KEYS'
  // public-key device tree
  | 'E_FIT_BAD_KEY';

export class FitError extends unhintedError<FitErrorCode>('FitError') {}
