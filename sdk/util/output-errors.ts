/** What can go wrong writing an output file or folder the user named (`--out`, `--dir`, `--html`, …). */
import { hintedError } from './errors';

export type OutputErrorCode =
  | 'E_OUT_EMPTY' // an empty path
  | 'E_OUT_IS_DIR' // a file was to be written where a folder is (or the path ends in "/")
  | 'E_OUT_NOT_DIR' // a folder on the way is a file
  | 'E_OUT_EXISTS' // a folder was to be created where something else already is
  | 'E_OUT_DENIED' // no permission (EACCES, EPERM)
  | 'E_OUT_READ_ONLY' // a read-only file system
  | 'E_OUT_NO_SPACE' // the disk (or /dev/full) is full
  | 'E_OUT_SPECIAL' // a socket, block device or other node that cannot take a file's bytes
  | 'E_OUT_LINK' // a symbolic link that leads nowhere (dangling, or a loop)
  | 'E_OUT_FOLDER' // a folder that cannot be created here (e.g. under /proc), or too many to create
  | 'E_OUT_PATH' // a name the file system refuses (too long, bad characters)
  | 'E_OUT_WRITE'; // any other write failure (I/O error)

const HINTS: Record<OutputErrorCode, string> = {
  E_OUT_EMPTY: 'name the file or folder to write',
  E_OUT_IS_DIR: 'name a file, e.g. a path inside that folder',
  E_OUT_NOT_DIR: 'choose another path, or move that file away',
  E_OUT_EXISTS: 'choose a path where nothing exists yet',
  E_OUT_DENIED: 'choose a place you may write to, or check its permissions',
  E_OUT_READ_ONLY: 'that file system is mounted read-only; write somewhere else',
  E_OUT_NO_SPACE: 'free some space or write somewhere else',
  E_OUT_SPECIAL: 'write to a regular file, a FIFO or a character device such as /dev/null',
  E_OUT_LINK: 'remove the link or name its target directly',
  E_OUT_FOLDER: 'write into an existing folder you may create files in',
  E_OUT_PATH: 'choose a shorter, plain path',
  E_OUT_WRITE: 'check the disk and the path, then run the command again',
};

export class OutputError extends hintedError<OutputErrorCode>('OutputError', HINTS) {}

/** An fs error met while writing `path` (or creating folder `path`), as an OutputError. */
export function outputErrorFor(e: unknown, path: string, doing = 'write'): OutputError {
  if (e instanceof OutputError) return e;
  const code = (e as NodeJS.ErrnoException)?.code ?? '';
  const at = JSON.stringify(path);
  switch (code) {
    case 'EISDIR':
      return new OutputError('E_OUT_IS_DIR', `cannot ${doing} ${at}: it is a folder`, e);
    case 'ENOTDIR':
      return new OutputError('E_OUT_NOT_DIR', `cannot ${doing} ${at}: part of the path is not a folder`, e);
    case 'EEXIST':
    case 'ENOTEMPTY':
      return new OutputError('E_OUT_EXISTS', `cannot ${doing} ${at}: something already exists there`, e);
    case 'EACCES':
    case 'EPERM':
      return new OutputError('E_OUT_DENIED', `cannot ${doing} ${at}: permission denied (${code})`, e);
    case 'EROFS':
      return new OutputError('E_OUT_READ_ONLY', `cannot ${doing} ${at}: read-only file system`, e);
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EFBIG':
      return new OutputError('E_OUT_NO_SPACE', `cannot ${doing} ${at}: no space left (${code})`, e);
    case 'ENXIO':
    case 'EOPNOTSUPP':
      return new OutputError('E_OUT_SPECIAL', `cannot ${doing} ${at}: it does not take data (${code})`, e);
    case 'ELOOP':
      return new OutputError('E_OUT_LINK', `cannot ${doing} ${at}: too many symbolic links`, e);
    case 'ENOENT':
      return new OutputError('E_OUT_FOLDER', `cannot ${doing} ${at}: nothing can be created in its folder (ENOENT)`, e);
    case 'ENAMETOOLONG':
    case 'EINVAL':
      return new OutputError('E_OUT_PATH', `cannot ${doing} ${at}: the file system refuses this name (${code})`, e);
    default:
      return new OutputError('E_OUT_WRITE', `cannot ${doing} ${at}: ${code || (e as Error)?.message || 'error'}`, e);
  }
}
