/**
 * Reading what `signet tcb` is given (sdk/cli/commands/tcb.ts): an app image, a boot image (FIT),
 * or a disk image whose boot partition holds the FIT. Apart from sdk/disk/boot-tcb.ts, which
 * boot-image.ts imports.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { TcbError } from '../build/tcb-errors';
import { decodeFdtHeader, FDT_HEADER_SIZE, FDT_MAGIC } from '../fit/fdt';
import { requiredConfKeys, verifyFit } from '../fit/fit-verify';
import { readPublicKeysFromDtb } from '../fit/keydtb';
import { IMAGE_MAGIC } from '../image/format';
import { readBootTcb, type BootTcbRecord } from './boot-tcb';
import { FileError } from '../util/files';
import { asSignetError } from './errors';
import { decodeGpt, GPT_SIGNATURE } from './gpt';

/** What `signet tcb` was given: an app image, a FIT, or a disk image whose boot partition holds one. */
export type TcbInputKind = 'simg' | 'fit' | 'disk';

/** Largest FIT read (U-Boot's FIT_SIGNATURE_MAX_SIZE). */
const MAX_FIT_BYTES = 256 * 1024 * 1024;
const SECTOR = 512;

/** Opens `path` read-only, runs `read` on it, closes it: a missing or non-regular file is refused as readInputFile does. */
function withInputFile<T>(path: string, read: (fd: number) => T): T {
  if (path === '') throw new FileError('E_FILE_NOT_FOUND', 'the path of the image file is empty', 'pass the path of an image file');
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO must not make us wait for a writer.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FileError('E_FILE_NOT_FOUND', `${path} does not exist`, 'check the path of the image file', e);
    throw new FileError('E_FILE_READ', `cannot read ${path} (${code ?? 'error'})`, 'check the path and its permissions', e);
  }
  try {
    if (!fstatSync(fd).isFile()) throw new FileError('E_FILE_READ', `${path} is not a regular file`, 'pass the path of an image file');
    return read(fd);
  } finally {
    closeSync(fd);
  }
}

function readAt(fd: number, offset: number, length: number, path: string): Uint8Array {
  const b = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, b, got, length - got, offset + got);
    if (n === 0) throw new TcbError('E_TCB_INPUT_KIND', `${path} ends at ${offset + got} bytes, inside what its header describes`);
    got += n;
  }
  return b;
}

function head(fd: number, offset: number, length: number): Uint8Array {
  const b = new Uint8Array(length);
  const n = readSync(fd, b, 0, length, offset);
  return b.subarray(0, n);
}

function fitAt(fd: number, offset: number, room: number, path: string): Uint8Array {
  const h = head(fd, offset, FDT_HEADER_SIZE);
  if (h.length < FDT_HEADER_SIZE) throw new TcbError('E_TCB_INPUT_KIND', `${path} holds no FIT`);
  const header = decodeFdtHeader(h);
  if (header.magic !== FDT_MAGIC) throw new TcbError('E_TCB_INPUT_KIND', `${path} holds no FIT`);
  if (header.totalSize > Math.min(room, MAX_FIT_BYTES)) throw new TcbError('E_TCB_INPUT_KIND', `the FIT in ${path} claims ${header.totalSize} bytes, more than there is room for`);
  return readAt(fd, offset, header.totalSize, path);
}

/**
 * Opens what `signet tcb` was given and says what it is: an app image (by its magic; the caller
 * reads it), a FIT (by the device-tree magic), or a GPT disk image whose `boot` partition holds a
 * FIT. Anything else is E_TCB_INPUT_KIND.
 */
export function readTcbInput(path: string): { kind: 'simg' } | { kind: 'fit' | 'disk'; fit: Uint8Array } {
  return withInputFile(path, (fd) => {
    const size = fstatSync(fd).size;
    const magic = head(fd, 0, 4);
    if (magic.length === 4 && IMAGE_MAGIC.every((b, i) => magic[i] === b)) return { kind: 'simg' as const };
    if (magic.length === 4 && ((magic[0]! << 24) | (magic[1]! << 16) | (magic[2]! << 8) | magic[3]!) >>> 0 === FDT_MAGIC) {
      return { kind: 'fit' as const, fit: fitAt(fd, 0, size, path) };
    }
    const sig = new TextDecoder().decode(head(fd, SECTOR, GPT_SIGNATURE.length));
    if (sig === GPT_SIGNATURE) {
      const gpt = decodeGpt((off, len) => readAt(fd, off, len, path), SECTOR);
      const boot = gpt.partitions.find((p) => p.name === 'boot');
      if (!boot) throw new TcbError('E_TCB_INPUT_KIND', `${path} is a disk image without a boot partition`);
      return { kind: 'disk' as const, fit: fitAt(fd, boot.offset, boot.size, `the boot partition of ${path}`) };
    }
    throw new TcbError('E_TCB_INPUT_KIND', `${path} is not an app image, a boot image (FIT) or a disk image`);
  });
}

export interface LoadedBootTcb {
  kind: 'fit' | 'disk';
  record: BootTcbRecord;
  /** True when the FIT's configuration signature (which covers the record) verified against the keys given. */
  verified: boolean;
}

/**
 * The TCB record of a boot image or disk image. With `keyDtb` (U-Boot's public-key DTB, from
 * `signet fit --key-dtb`), the FIT is first verified as U-Boot would (sdk/fit verifyFit): the
 * record sits in the signed root node, so a record that was altered fails here.
 */
export function loadBootTcb(path: string, keyDtb?: Uint8Array): LoadedBootTcb {
  try {
    const input = readTcbInput(path);
    if (input.kind === 'simg') throw new TcbError('E_TCB_VS_KIND', `${path} is an app image, not a boot image`);
    if (keyDtb) verifyFit(input.fit, requiredConfKeys(readPublicKeysFromDtb(keyDtb)));
    return { kind: input.kind, record: readBootTcb(input.fit, path), verified: keyDtb !== undefined };
  } catch (e) {
    throw asSignetError(e);
  }
}
