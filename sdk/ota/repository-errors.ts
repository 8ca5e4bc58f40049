/** What can go wrong writing a TUF repository (publishing a release). Callers branch on `code`. */
import { hintedError } from '../util/errors';

export type RepositoryErrorCode =
  | 'E_REPO_TARGET_CHANGED' // a published target name would point at different bytes
  | 'E_REPO_TARGET_MISSING' // targets metadata names a file the repository does not hold
  | 'E_REPO_IMAGE_MISMATCH' // an image's manifest disagrees with its targets entry
  | 'E_REPO_NO_TARGETS_KEY' // no usable targets key to sign with offline
  | 'E_REPO_ONLINE_KEY' // snapshot/timestamp key missing, or not the one root names
  | 'E_REPO_NO_TARGETS' // nothing published yet: no targets metadata to re-sign
  | 'E_ROOT_EDIT' // a `root new` edit that cannot apply (unknown role, key, threshold)
  | 'E_ROOT_MISMATCH' // two copies of a root to merge do not hold the same signed content
  | 'E_ROOT_SIGNATURE' // a signature in a root file that does not verify over its content
  | 'E_ROOT_KEY_UNKNOWN' // signing a root with a key that is not a root key of the old or new root
  | 'E_ROOT_UNSIGNED'; // a root without the signatures clients need (old and new thresholds)

const HINTS: Record<RepositoryErrorCode, string> = {
  E_REPO_TARGET_CHANGED: 'publish a new version; a released name never changes its bytes',
  E_REPO_TARGET_MISSING: 'upload the image before publishing metadata that names it',
  E_REPO_IMAGE_MISMATCH: 'publish with `signet publish`, which derives the entry from the image',
  E_REPO_NO_TARGETS_KEY: 'pass --keys with the targets-*.key files `signet keys init` wrote',
  E_REPO_ONLINE_KEY: 'give the server snapshot.key and timestamp.key from the same `signet keys init` as root.json',
  E_REPO_NO_TARGETS: 'publish a release first; there is nothing to re-sign',
  E_ROOT_EDIT: 'see `signet root new --help`: --add-key ROLE=FILE.pub, --remove-key ROLE=KEYID, --threshold ROLE=N',
  E_ROOT_MISMATCH: 'every holder must sign the same file from `signet root new`; start again from that file',
  E_ROOT_SIGNATURE: 'the file was changed after it was signed; start again from the file `signet root new` wrote',
  E_ROOT_KEY_UNKNOWN: 'sign with a root key of the new root, or of the current one (pass it with --trusted)',
  E_ROOT_UNSIGNED: 'collect more signatures with `signet root sign`; `signet root verify` says whose are missing',
};

export class RepositoryError extends hintedError<RepositoryErrorCode>('RepositoryError', HINTS) {}
