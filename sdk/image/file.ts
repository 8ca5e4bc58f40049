/** App images as files (workstation side): read with a cap, inspect, verify. */
import { nodeCrypto } from './crypto-node';
import { readInputFile } from '../util/files';
import { toHex } from '../util/bytes';
import { loadTrustedRootFile } from '../ota/root-file';
import { decodeLayout, MAX_MANIFEST_SIZE, MAX_PAYLOAD_SIZE, MAX_SIGNATURES, HEADER_SIZE, SIG_BLOCK_HEADER_SIZE, SIG_ENTRY_SIZE } from './format';
import { decodeManifest, type Manifest } from './manifest';
import { verifyImage, type VerifiedImage } from './verify';

export const MAX_IMAGE_FILE = HEADER_SIZE + MAX_MANIFEST_SIZE + MAX_PAYLOAD_SIZE + SIG_BLOCK_HEADER_SIZE + MAX_SIGNATURES * SIG_ENTRY_SIZE;

export function readImageFile(path: string): Uint8Array {
  return readInputFile(path, MAX_IMAGE_FILE, 'Signet app image (.simg)');
}

export interface ImageDescription {
  file: string;
  totalSize: number;
  header: { formatVersion: number; headerSize: number; manifestSize: number; payloadSize: number; flags: number };
  manifest: Manifest;
  signatures: { keyid: string; status?: string }[];
}

/** Structure and manifest only; no trust decision (that is `verify`). */
export function describeImage(path: string, bytes: Uint8Array): ImageDescription {
  const layout = decodeLayout(bytes);
  const manifest = decodeManifest(layout.manifestBytes);
  return {
    file: path,
    totalSize: layout.totalSize,
    header: layout.header,
    manifest,
    signatures: layout.signatures.map((s) => ({ keyid: toHex(s.keyid) })),
  };
}

export interface VerifyFileOptions {
  rootPath: string;
  board: string;
  minSecurityCounter?: number;
  now?: number | null;
}

export function verifyImageFile(path: string, opts: VerifyFileOptions): VerifiedImage {
  const now = opts.now === undefined ? Math.floor(Date.now() / 1000) : opts.now;
  const root = loadTrustedRootFile(opts.rootPath, nodeCrypto, now);
  return verifyImage(readImageFile(path), {
    root,
    board: opts.board,
    minSecurityCounter: opts.minSecurityCounter,
    now,
    crypto: nodeCrypto,
  });
}
