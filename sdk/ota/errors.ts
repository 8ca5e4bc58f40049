/** What can go wrong with TUF metadata. A closed set; callers branch on `code`. */
import { SignetError } from '../util/errors';

export type MetadataErrorCode =
  | 'E_META_FORMAT' // not TUF metadata of the expected shape
  | 'E_META_TYPE' // a role other than the one expected
  | 'E_META_SPEC' // a spec version we do not implement
  | 'E_META_THRESHOLD' // fewer valid signatures than the role's threshold
  | 'E_META_EXPIRED' // past its expires time
  | 'E_META_VERSION' // version rollback or a gap in the root chain
  | 'E_META_KEY'; // a key of an unsupported type or with a wrong key id

const HINTS: Record<MetadataErrorCode, string> = {
  E_META_FORMAT: 'check that the file is TUF metadata written by `signet keys init` or the update server',
  E_META_TYPE: 'pass the metadata of the right role (root.json for --root)',
  E_META_SPEC: 'upgrade Signet to read metadata of this spec version',
  E_META_THRESHOLD: 'sign the metadata with enough of the role\'s keys',
  E_META_EXPIRED: 'refresh the metadata (re-sign it with a later expiry)',
  E_META_VERSION: 'use the next version in sequence; older metadata is never accepted',
  E_META_KEY: 'use ed25519 keys whose key id is the SHA-256 of their canonical JSON',
};

export class MetadataError extends SignetError {
  override readonly code: MetadataErrorCode;
  constructor(code: MetadataErrorCode, message: string, cause?: unknown) {
    super(code, message, HINTS[code], cause);
    if (Object.setPrototypeOf) Object.setPrototypeOf(this, MetadataError.prototype);
    this.code = code;
    this.name = 'MetadataError';
  }
}
