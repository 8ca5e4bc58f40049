/**
 * The closed set of reasons an app image is refused. The boot stage prints these codes
 * (`boot[FALLBACK] slot=b reason=E_SIGNATURE`), the OTA agent reports them, the CLI prints
 * them; nobody branches on message text.
 */
import { hintedError } from '../util/errors';

export type ImageErrorCode =
  | 'E_TRUNCATED' // fewer bytes than the header says
  | 'E_MAGIC' // not a Signet app image
  | 'E_VERSION' // format version we do not implement
  | 'E_HEADER' // header fields inconsistent (size, flags, reserved bytes)
  | 'E_SIZE_CAP' // a size beyond the hard caps, refused before allocating
  | 'E_SIG_BLOCK' // signature block malformed
  | 'E_TRAILING_DATA' // bytes after the signature block
  | 'E_MANIFEST' // manifest not canonical, unknown/missing field, bad value
  | 'E_SIGNATURE' // a signature by a trusted key does not verify (tampered header/manifest)
  | 'E_UNKNOWN_KEY' // signed only by keys the root does not trust for targets
  | 'E_THRESHOLD' // fewer valid signatures than the targets threshold
  | 'E_DIGEST' // a payload does not match its digest in the manifest
  | 'E_BOARD' // built for another board
  | 'E_EXPIRED' // past its expiry time
  | 'E_ROLLBACK' // security counter below the minimum
  | 'E_ROOT' // the trust root given to the verifier is unusable
  | 'E_ALREADY_SIGNED'; // signing, not verifying: this key has already signed the image

/** The closed set of verification verdicts (docs/image-format.md §5); signing adds E_ALREADY_SIGNED. */
export const IMAGE_ERROR_CODES: readonly ImageErrorCode[] = [
  'E_TRUNCATED', 'E_MAGIC', 'E_VERSION', 'E_HEADER', 'E_SIZE_CAP', 'E_SIG_BLOCK', 'E_TRAILING_DATA',
  'E_MANIFEST', 'E_SIGNATURE', 'E_UNKNOWN_KEY', 'E_THRESHOLD', 'E_DIGEST', 'E_BOARD', 'E_EXPIRED',
  'E_ROLLBACK', 'E_ROOT',
];

const HINTS: Record<ImageErrorCode, string> = {
  E_TRUNCATED: 'the file is incomplete; copy or download it again',
  E_MAGIC: 'this is not a Signet app image (.simg); build one with `signet build`',
  E_VERSION: 'the image was made by a newer Signet; upgrade the verifier',
  E_HEADER: 'the image header is corrupt; rebuild the image',
  E_SIZE_CAP: 'the image exceeds the hard size limits; shrink the payload or raise the board limit',
  E_SIG_BLOCK: 'the signature block is corrupt; re-sign the image',
  E_TRAILING_DATA: 'unexpected bytes follow the image; use the exact file `signet build` wrote',
  E_MANIFEST: 'the manifest is malformed; rebuild the image with `signet build`',
  E_SIGNATURE: 'the image was modified after signing or signed with another key; do not use it',
  E_UNKNOWN_KEY: 'sign it with a targets key named in the root metadata, or pass the matching --root',
  E_THRESHOLD: 'add signatures with `signet sign --key <targets key>` until the threshold is met',
  E_DIGEST: 'the payload was modified after signing; do not use this image',
  E_BOARD: 'build the image for this board (`signet build` with the right board in signet.json)',
  E_EXPIRED: 'the image is past its expiry; build and sign a new release',
  E_ROLLBACK: 'the image is older than what the device accepts; publish one with a higher --security-counter',
  E_ROOT: 'check the root metadata file (`--root`)',
  E_ALREADY_SIGNED: 'nothing to do: each key signs once; add another targets key to reach the threshold',
};

export class ImageError extends hintedError<ImageErrorCode>('ImageError', HINTS) {}
