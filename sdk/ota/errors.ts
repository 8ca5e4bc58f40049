/** What can go wrong with TUF metadata. A closed set; callers branch on `code`. */
import { hintedError, isSignetError, SignetError } from '../util/errors';

export type MetadataErrorCode =
  | 'E_META_FORMAT' // not TUF metadata of the expected shape
  | 'E_META_TYPE' // a role other than the one expected
  | 'E_META_SPEC' // a spec version we do not implement
  | 'E_META_THRESHOLD' // fewer valid signatures than the role's threshold
  | 'E_META_EXPIRED' // past its expires time
  | 'E_META_VERSION' // version rollback or a gap in the root chain
  | 'E_META_KEY' // a key of an unsupported type or with a wrong key id
  | 'E_META_ROLLBACK' // older than metadata the device already trusts (timestamp, snapshot, targets)
  | 'E_META_MISMATCH'; // version, length or hash differs from what the referring role says (mix-and-match)

const HINTS: Record<MetadataErrorCode, string> = {
  E_META_FORMAT: 'check that the file is TUF metadata written by `signet keys init` or the update server',
  E_META_TYPE: 'pass the metadata of the right role (root.json for --root)',
  E_META_SPEC: 'upgrade Signet to read metadata of this spec version',
  E_META_THRESHOLD: 'sign the metadata with enough of the role\'s keys',
  E_META_EXPIRED: 'refresh the metadata (re-sign it with a later expiry)',
  E_META_VERSION: 'use the next version in sequence; older metadata is never accepted',
  E_META_KEY: 'use ed25519 keys whose key id is the SHA-256 of their canonical JSON',
  E_META_ROLLBACK: 'the repository served older metadata than the device already has; check the server or mirror',
  E_META_MISMATCH: 'the repository serves files that do not belong together; re-publish so snapshot and timestamp match',
};

export class MetadataError extends hintedError<MetadataErrorCode>('MetadataError', HINTS) {}

/**
 * What can go wrong moving bytes and deciding about a target on the device (fetcher, TUF
 * target step, agent). A closed set; callers and the server branch on `code`.
 */
export type OtaErrorCode =
  | 'E_FETCH_HTTP' // the server answered with a status this request cannot use (5xx, 3xx, …)
  | 'E_FETCH_REFUSED' // the server refused the request (4xx other than 404 and 416)
  | 'E_FETCH_NOT_FOUND' // 404: the file is not on the server
  | 'E_FETCH_NETWORK' // connection refused or reset, TLS failure, bad URL
  | 'E_FETCH_CUT' // the body ended before the server said it would (resumable)
  | 'E_FETCH_TOO_LARGE' // more bytes than the hard cap (endless data)
  | 'E_FETCH_STALL' // no byte within the stall timeout (slow retrieval)
  | 'E_FETCH_SLOW' // average rate below the floor after the grace period (slow retrieval)
  | 'E_FETCH_RANGE' // a resumed request got back a range other than the one asked for
  | 'E_TARGET_UNKNOWN' // the offered target is not in the signed targets metadata
  | 'E_TARGET_NAME' // a target name that cannot be a safe path
  | 'E_TARGET_BOARD' // the target is for another board (refused before download)
  | 'E_TARGET_ROLLBACK' // its security counter is below the device floor (refused before download)
  | 'E_TARGET_TOO_LARGE' // longer than the slot or the configured cap (refused before download)
  | 'E_TARGET_LENGTH' // downloaded length differs from the signed length
  | 'E_TARGET_HASH' // downloaded SHA-256 differs from the signed hash
  | 'E_TARGET_MANIFEST' // the image manifest disagrees with the signed target entry
  | 'E_API' // check-in or report answer malformed or refused
  | 'E_CLOCK' // no trustworthy clock: expiry cannot be checked, so nothing is trusted
  | 'E_CLIENT_STATE' // a step asked for out of order (the trust state machine refuses)
  | 'E_AGENT_MIRROR' // a configured mirror is not an http(s) URL
  | 'E_INTERNAL'; // a bug: an exception that is not a Signet error

const OTA_HINTS: Record<OtaErrorCode, string> = {
  E_FETCH_HTTP: 'check the update server URL and its logs',
  E_FETCH_REFUSED: 'the server refused the request; check the device certificate and the server log',
  E_FETCH_NOT_FOUND: 'the repository is missing a file; re-publish',
  E_FETCH_NETWORK: 'check the network, the server address and the device certificate',
  E_FETCH_CUT: 'the connection dropped; the next attempt resumes where it stopped',
  E_FETCH_TOO_LARGE: 'the server sent more than the signed or configured size; check the server or mirror',
  E_FETCH_STALL: 'the server stopped sending; check the server or the network path',
  E_FETCH_SLOW: 'the server sends too slowly; check the server or the network path',
  E_FETCH_RANGE: 'the server does not honour HTTP Range; fix the server or proxy',
  E_TARGET_UNKNOWN: 'publish the target in signed targets metadata before offering it',
  E_TARGET_NAME: 'target names are <board>/<name>-<version>.simg',
  E_TARGET_BOARD: 'offer this device a release built for its board',
  E_TARGET_ROLLBACK: 'publish a release with a higher --security-counter',
  E_TARGET_TOO_LARGE: 'shrink the image or raise the cap; it must fit the inactive slot',
  E_TARGET_LENGTH: 'the server or a mirror serves a different file; re-publish',
  E_TARGET_HASH: 'the server or a mirror serves a modified file; do not trust it',
  E_TARGET_MANIFEST: 'the targets entry does not describe this image; re-publish with `signet publish`',
  E_API: 'check that the update server speaks docs/ota-protocol.md',
  E_CLOCK: 'set the device clock (NTP or RTC) before updating',
  E_CLIENT_STATE: 'run the TUF refresh steps in order',
  E_AGENT_MIRROR: 'list mirrors as base URLs like https://cdn.example.com/signet (metadata/ and targets/ lie under it)',
  E_INTERNAL: 'this is a bug in Signet; please report it',
};

export class OtaError extends hintedError<OtaErrorCode>('OtaError', OTA_HINTS) {}

/** Every failure as a SignetError with a code: anything else becomes E_INTERNAL. */
export function asSignetError(e: unknown): SignetError {
  if (isSignetError(e)) return e;
  const msg = e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string' ? (e as { message: string }).message : String(e);
  return new OtaError('E_INTERNAL', msg, e);
}
