/** What can go wrong while fetching packages from Debian's archive. */
import { unhintedError } from '../util/errors';
export type DebianErrorCode =
  | 'E_DEB_MISSING' // apt does not know the package (lists not updated, architecture not enabled)
  | 'E_DEB_NOT_META' // the package given to resolveMeta does not point at a kernel image
  | 'E_DEB_TOOL_MISSING' // apt-get, apt-cache or dpkg-deb is not installed
  | 'E_DEB_DOWNLOAD' // apt-get download failed or delivered something unexpected
  | 'E_DEB_EXTRACT'; // dpkg-deb -x failed

export class DebianError extends unhintedError<DebianErrorCode>('DebianError') {}
