/**
 * Reading user-named input files (images, root.json, key files, certificates, key DTBs) with
 * clear errors, in bounded memory: the file is opened without blocking (a FIFO with no writer
 * does not hang us), must be a regular file (not /dev/zero, a FIFO or a socket), and is read
 * up to its cap and one byte more, so a file that grows while we read is refused too.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { SignetError } from './errors';

export class FileError extends SignetError {
  constructor(code: 'E_FILE_NOT_FOUND' | 'E_FILE_READ' | 'E_FILE_TOO_LARGE', message: string, hint: string, cause?: unknown) {
    super(code, message, hint, cause);
    Object.setPrototypeOf(this, FileError.prototype);
    this.name = 'FileError';
  }
}

/** Caps for the small files a user names: PEM keys and certificates, identity.json. */
export const MAX_PEM_FILE = 64 * 1024;
/** A U-Boot public-key DTB (a few RSA keys and their properties). */
export const MAX_KEY_DTB_FILE = 256 * 1024;

function kind(st: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

export function readInputFile(path: string, maxBytes: number, what = 'file'): Uint8Array {
  if (path === '') throw new FileError('E_FILE_NOT_FOUND', `the path of the ${what} is empty`, `pass the path of a ${what}`);
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; regular files ignore it.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FileError('E_FILE_NOT_FOUND', `${path} does not exist`, `check the path of the ${what}`, e);
    if (code === 'ENXIO') throw new FileError('E_FILE_READ', `${path} is a socket, not a regular file`, `pass the path of a ${what}`, e);
    throw new FileError('E_FILE_READ', `cannot read ${path} (${code ?? 'error'})`, 'check the path and its permissions', e);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FileError('E_FILE_READ', `${path} is ${kind(st)}, not a regular file`, `pass the path of a ${what}`);
    if (st.size > maxBytes) {
      throw new FileError('E_FILE_TOO_LARGE', `${path} is ${st.size} bytes, more than the ${maxBytes}-byte limit for a ${what}`, `pass a real ${what}`);
    }
    let buf = new Uint8Array(Math.min(st.size, maxBytes) + 1);
    let got = 0;
    for (;;) {
      if (got === buf.length) {
        // The file grew since fstat: keep reading, but never past the cap and one byte.
        const bigger = new Uint8Array(Math.min(buf.length * 2, maxBytes + 1));
        bigger.set(buf);
        buf = bigger;
      }
      let n: number;
      try {
        n = readSync(fd, buf, got, buf.length - got, got);
      } catch (e) {
        throw new FileError('E_FILE_READ', `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, 'check the path and its permissions', e);
      }
      if (n === 0) break;
      got += n;
      if (got > maxBytes) {
        throw new FileError('E_FILE_TOO_LARGE', `${path} is more than the ${maxBytes}-byte limit for a ${what}`, `pass a real ${what}`);
      }
    }
    return got === buf.length ? buf : buf.slice(0, got);
  } finally {
    closeSync(fd);
  }
}

/** readInputFile for text files (PEM, JSON): UTF-8, and a file with a NUL byte is refused. */
export function readInputText(path: string, maxBytes: number, what = 'file'): string {
  const bytes = readInputFile(path, maxBytes, what);
  if (bytes.includes(0)) throw new FileError('E_FILE_READ', `${path} is binary, not a text ${what}`, `pass the path of a ${what}`);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
}
