/** Reading user-named input files with clear errors and a size cap checked before reading. */
import { readFileSync, statSync } from 'node:fs';
import { SignetError } from './errors';

export class FileError extends SignetError {
  constructor(code: 'E_FILE_NOT_FOUND' | 'E_FILE_READ' | 'E_FILE_TOO_LARGE', message: string, hint: string, cause?: unknown) {
    super(code, message, hint, cause);
    Object.setPrototypeOf(this, FileError.prototype);
    this.name = 'FileError';
  }
}

export function readInputFile(path: string, maxBytes: number, what = 'file'): Uint8Array {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new FileError('E_FILE_READ', `${path} is not a regular file`, `pass the path of a ${what}`);
    size = st.size;
  } catch (e) {
    if (e instanceof FileError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FileError('E_FILE_NOT_FOUND', `${path} does not exist`, `check the path of the ${what}`, e);
    throw new FileError('E_FILE_READ', `cannot read ${path} (${code ?? 'error'})`, 'check the path and its permissions', e);
  }
  if (size > maxBytes) {
    throw new FileError('E_FILE_TOO_LARGE', `${path} is ${size} bytes, more than the ${maxBytes}-byte limit for a ${what}`, `pass a real ${what}`);
  }
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new FileError('E_FILE_READ', `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, 'check the path and its permissions', e);
  }
}
