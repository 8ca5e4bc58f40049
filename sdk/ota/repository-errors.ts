/** What can go wrong writing a TUF repository (publishing a release). Callers branch on `code`. */
import { hintedError } from '../util/errors';

export type RepositoryErrorCode =
  | 'E_REPO_TARGET_CHANGED' // a published target name would point at different bytes
  | 'E_REPO_TARGET_MISSING' // targets metadata names a file the repository does not hold
  | 'E_REPO_IMAGE_MISMATCH' // an image's manifest disagrees with its targets entry
  | 'E_REPO_NO_TARGETS_KEY' // no usable targets key to sign with offline
  | 'E_REPO_ONLINE_KEY'; // snapshot/timestamp key missing, or not the one root names

const HINTS: Record<RepositoryErrorCode, string> = {
  E_REPO_TARGET_CHANGED: 'publish a new version; a released name never changes its bytes',
  E_REPO_TARGET_MISSING: 'upload the image before publishing metadata that names it',
  E_REPO_IMAGE_MISMATCH: 'publish with `signet publish`, which derives the entry from the image',
  E_REPO_NO_TARGETS_KEY: 'pass --keys with the targets-*.key files `signet keys init` wrote',
  E_REPO_ONLINE_KEY: 'give the server snapshot.key and timestamp.key from the same `signet keys init` as root.json',
};

export class RepositoryError extends hintedError<RepositoryErrorCode>('RepositoryError', HINTS) {}
