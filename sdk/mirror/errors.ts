/** What can go wrong exporting the repository to a mirror folder. A closed set; callers branch on `code`. */
import { hintedError } from '../util/errors';

export type MirrorErrorCode =
  | 'E_MIRROR_OPTION' // an option out of range or missing (--to, --interval, --grace)
  | 'E_MIRROR_SERVER' // --server is not an https URL
  | 'E_MIRROR_DIR' // --to is a file, unwritable, or a non-empty folder that is not a Signet mirror
  | 'E_MIRROR_BUSY' // another `signet mirror sync` holds the folder's lock
  | 'E_MIRROR_ROOT' // --root is not a root metadata file
  | 'E_MIRROR_UNREACHABLE' // the server could not be reached or refused the identity
  | 'E_MIRROR_SOURCE' // the server's metadata does not verify (signatures, expiry, rollback, consistency)
  | 'E_MIRROR_TARGET'; // a target the server served differs from its signed length or hash

const HINTS: Record<MirrorErrorCode, string> = {
  E_MIRROR_OPTION: 'see `signet mirror sync --help`',
  E_MIRROR_SERVER: 'pass --server https://HOST:PORT (the update server)',
  E_MIRROR_DIR: 'pass --to a new or empty folder, or one an earlier `signet mirror sync` wrote',
  E_MIRROR_BUSY: 'wait for the other sync to finish, or remove the lock if its process is gone',
  E_MIRROR_ROOT: 'pass the root.json from `signet keys init` (or a later root)',
  E_MIRROR_UNREACHABLE: 'check --server, the network and the identity in --admin (any vendor-CA certificate the server accepts)',
  E_MIRROR_SOURCE: 'the server serves metadata that does not verify; the mirror was left as it was; check the server',
  E_MIRROR_TARGET: 'the server serves a target that is not what its metadata signs; the mirror was left as it was; check the blob store',
};

export class MirrorError extends hintedError<MirrorErrorCode>('MirrorError', HINTS) {}
