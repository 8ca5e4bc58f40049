/**
 * What the update server refuses, with the HTTP status each maps to. Responses carry the code
 * as JSON (`{ "error": { "code", "message", "hint" } }`) so clients branch on the code, and the
 * CLI prints the same one line a local error would.
 */
import { CodedError } from '../sdk/util/errors';

export type ServerErrorCode =
  | 'E_AUTH_NO_CERT' // no client certificate
  | 'E_AUTH_BAD_CERT' // a certificate the vendor CA did not issue, or expired
  | 'E_AUTH_REVOKED' // the identity is on the server's revocation list
  | 'E_AUTH_ROLE' // a device calling an admin endpoint, or the other way round
  | 'E_NOT_FOUND'
  | 'E_METHOD'
  | 'E_BAD_REQUEST' // a body or parameter that is not what the endpoint takes
  | 'E_MEDIA_TYPE' // an admin write whose Content-Type is not the one the endpoint takes
  | 'E_CROSS_SITE' // an admin write a browser sent from another site (Sec-Fetch-Site / Origin)
  | 'E_DEVICE_BOARD' // a device claiming a board or channel its certificate was not enrolled for
  | 'E_BLOB_NOT_IMAGE' // an uploaded blob that is not a Signet image for a known board
  | 'E_TOO_LARGE' // a body beyond the endpoint's cap
  | 'E_RATE_LIMITED' // a device checking in or reporting faster than its token bucket allows
  | 'E_RANGE' // an unsatisfiable Range header
  | 'E_UPLOAD_MISMATCH' // uploaded bytes do not have the announced length or hash
  | 'E_CONFLICT' // someone else changed the repository meanwhile
  | 'E_ROLLOUT_STATE' // a rollout transition that its state does not allow
  | 'E_SERVER_OFFLINE_KEYS' // started with root or targets private keys
  | 'E_SERVER_CONFIG' // data folder, keys folder or options unusable
  | 'E_SERVER_TLS'; // no TLS certificate and no way to make one

const TABLE: Record<ServerErrorCode, [number, string]> = {
  E_AUTH_NO_CERT: [401, 'present a client certificate from `signet device enroll`'],
  E_AUTH_BAD_CERT: [401, 'use a certificate issued by this server\'s vendor CA (`signet device enroll --keys ...`)'],
  E_AUTH_REVOKED: [403, 'this identity was revoked; enroll the device again under a new id'],
  E_AUTH_ROLE: [403, 'admin calls need a certificate from `signet device enroll --admin`'],
  E_NOT_FOUND: [404, 'check the path; metadata and targets are named as in docs/ota-protocol.md'],
  E_METHOD: [405, 'check the HTTP method (docs/ota-protocol.md §2)'],
  E_BAD_REQUEST: [400, 'send the body docs/ota-protocol.md §2 describes'],
  E_MEDIA_TYPE: [415, 'send admin writes with Content-Type: application/json (blob uploads: application/octet-stream)'],
  E_CROSS_SITE: [403, 'admin actions are taken with the signet CLI or from a page of this server, never from another site'],
  E_DEVICE_BOARD: [403, 'check in with the board and channel the device was enrolled for, or enroll it again: `signet device enroll --id ID --board BOARD`'],
  E_BLOB_NOT_IMAGE: [422, 'upload a signed Signet app image (.simg) for a board this server knows'],
  E_TOO_LARGE: [413, 'stay within the size limits in docs/update-server.md'],
  E_RATE_LIMITED: [429, 'wait the Retry-After seconds; a device checks in every few minutes, not many times a second'],
  E_RANGE: [416, 'ask for a byte range inside the file'],
  E_UPLOAD_MISMATCH: [422, 'upload the exact image bytes named by their SHA-256 and length'],
  E_CONFLICT: [409, 'fetch the current state and try again'],
  E_ROLLOUT_STATE: [409, 'check the rollout with `signet rollout status`'],
  E_SERVER_OFFLINE_KEYS: [500, 'give the server a folder with only the online keys: `signet server keys --keys keys --out server-keys`'],
  E_SERVER_CONFIG: [500, 'check --data and --keys (docs/update-server.md)'],
  E_SERVER_TLS: [500, 'run `signet server keys` to issue a server certificate, or put vendor-ca.key in --keys for the first start'],
};

export class ServerError extends CodedError<ServerErrorCode> {
  readonly status: number;
  constructor(code: ServerErrorCode, message: string, cause?: unknown) {
    super('ServerError', code, message, TABLE[code][1], cause);
    this.status = TABLE[code][0];
  }
}
