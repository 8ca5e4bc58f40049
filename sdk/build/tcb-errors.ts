/**
 * What can go wrong making a trusted-code-base report of a boot image or a native binary.
 * Closed set; the CLI prints `error[CODE]: message — hint`.
 */
import { hintedError } from '../util/errors';

export type TcbErrorCode =
  | 'E_TCB_LINK_MAP' // the link map cannot be read, or does not describe the binary
  | 'E_TCB_ELF' // the binary is not an ELF file whose section headers can be read
  | 'E_TCB_INPUT_KIND' // the file is neither a .simg app image, a FIT boot image, nor a disk image holding one
  | 'E_TCB_NO_RECORD' // a boot image without a TCB record (built before records existed)
  | 'E_TCB_RECORD' // the boot image's TCB record is malformed
  | 'E_TCB_VS_KIND'; // --vs compares an app image with a boot image

const HINTS: Record<TcbErrorCode, string> = {
  E_TCB_LINK_MAP: 'rebuild signet-host (delete its folder under <cache>/native) so the link writes a fresh map',
  E_TCB_ELF: 'pass the signet-host the build produced',
  E_TCB_INPUT_KIND: 'pass an app image (.simg), a boot image (.itb from `signet fit`) or a disk image from `signet disk`',
  E_TCB_NO_RECORD: 'this boot image was built before Signet recorded its TCB: rebuild it with `signet fit` (or the disk with `signet disk`)',
  E_TCB_RECORD: 'rebuild the boot image with `signet fit`; check its signature with `signet tcb --keys DIR`',
  E_TCB_VS_KIND: 'compare an app image with an app image, a boot image (or disk) with a boot image',
};

export class TcbError extends hintedError<TcbErrorCode>('TcbError', HINTS) {}
