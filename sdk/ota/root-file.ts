/** Loading a root.json file given on the command line as a trust anchor. */
import { readInputFile } from '../util/files';
import type { ImageCrypto } from '../image/crypto';
import { verifyTrustedRoot, type RootSigned } from './metadata';

export const MAX_ROOT_BYTES = 512 * 1024;

export function loadTrustedRootFile(path: string, crypto: ImageCrypto, nowSeconds: number | null): RootSigned {
  return verifyTrustedRoot(readInputFile(path, MAX_ROOT_BYTES, 'root metadata file (root.json)'), crypto, nowSeconds);
}
