/** What `signet device provision` refuses (besides the disk's and the store's own errors). Closed set. */
import { hintedError } from '../util/errors';

export type ProvisionErrorCode =
  | 'E_PROVISION_ID' // the device id is not a valid id
  | 'E_PROVISION_BOARD' // the disk's app image is for another board
  | 'E_PROVISION_TLS' // neither --issue nor --cert/--key, both, or one without the other
  | 'E_PROVISION_KEY' // --key is not an unencrypted private key, or not the key of --cert
  | 'E_PROVISION_CERT' // --cert is not a certificate issued by the vendor CA
  | 'E_PROVISION_SETTING' // a --set that is not KEY=VALUE
  | 'E_PROVISION_IDENTITY'; // --identity is not a device identity for this id and board

export class ProvisionError extends hintedError<ProvisionErrorCode>('ProvisionError', {
  E_PROVISION_ID: 'use 1-64 characters of A-Z, a-z, 0-9, ".", "_" and "-"',
  E_PROVISION_BOARD: 'pass the board the disk was made for (`signet disk --board`)',
  E_PROVISION_TLS: 'pass --issue (with --ca-dir) or both --cert FILE and --key FILE',
  E_PROVISION_KEY: 'pass the unencrypted PEM private key that belongs to --cert',
  E_PROVISION_CERT: 'pass a PEM certificate issued by the vendor CA in --ca-dir',
  E_PROVISION_SETTING: 'write --set name=value (name: a-z, 0-9, ".", "_", "-")',
  E_PROVISION_IDENTITY: 'pass the folder `signet device enroll --id ID --board BOARD` wrote for this device',
}) {}
