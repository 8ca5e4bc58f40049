/**
 * What `PUT /api/v1/blobs/<sha256>` may store: bytes that are an image a device could be
 * offered, recognised by their magic and checked by that kind's own verifier. Today that is
 * the Signet app image (`.simg`): its layout decodes, its manifest names a board this server
 * knows, and the targets keys of the trusted root sign it. And the boot image (U-Boot FIT,
 * magic d00dfeed): it verifies against the FIT public key the server was given (fit-pub.dtb,
 * the key U-Boot holds) and its signed release fields name a board this server knows, whose
 * arch is the kernel's (sdk/ota/boot-target.ts).
 */
import { loadBoard } from '../sdk/board';
import { decodeFdtHeader, FDT_MAGIC } from '../sdk/fit/fdt';
import type { FitVerifyKey } from '../sdk/fit/fit-verify';
import { checkBootRelease, FIT_MAGIC } from '../sdk/ota/boot-target';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { decodeHeader, decodeLayout, HEADER_SIZE, IMAGE_MAGIC, SIG_BLOCK_HEADER_SIZE, sigBlockOffset } from '../sdk/image/format';
import { decodeManifest } from '../sdk/image/manifest';
import { verifyImage } from '../sdk/image/verify';
import type { RootSigned } from '../sdk/ota/metadata';
import { ServerError } from './errors';

export interface BlobContext {
  root: RootSigned;
  /** Unix seconds (an expired image is refused as a device would). */
  now: number;
  /** The FIT public key(s) boot images must verify against; none: boot images are refused. */
  fitKeys?: readonly FitVerifyKey[];
}

export interface BlobKind {
  name: string;
  magic: readonly number[];
  /** Bytes needed to recognise the kind and refuse early (before the rest streams in). */
  headSize: number;
  /** Early check of the first headSize bytes against the announced length. */
  checkHead(head: Uint8Array, length: number): void;
  /** The full check of the complete bytes; throws what it found wrong. */
  check(bytes: Uint8Array, ctx: BlobContext): void;
}

const appImage: BlobKind = {
  name: 'Signet app image',
  magic: IMAGE_MAGIC,
  headSize: HEADER_SIZE,
  checkHead(head, length) {
    // The header alone says how long manifest and payload are: refuse a length that cannot hold them.
    const least = sigBlockOffset(decodeHeader(head)) + SIG_BLOCK_HEADER_SIZE;
    if (least > length) throw new Error(`its header describes at least ${least} bytes, the upload is ${length}`);
  },
  check(bytes, ctx) {
    const layout = decodeLayout(bytes);
    const manifest = decodeManifest(layout.manifestBytes);
    loadBoard(manifest.board);
    verifyImage(bytes, { root: ctx.root, board: manifest.board, now: ctx.now, crypto: nodeCrypto });
  },
};

const bootImage: BlobKind = {
  name: 'boot image (FIT)',
  magic: FIT_MAGIC,
  headSize: 40,
  checkHead(head, length) {
    // The FDT header says how long the tree is: it must be exactly the upload.
    const h = decodeFdtHeader(head);
    if (h.magic !== FDT_MAGIC || h.totalSize !== length) throw new Error(`its FDT header describes ${h.totalSize} bytes, the upload is ${length}`);
  },
  check(bytes, ctx) {
    checkBootRelease(bytes, ctx.fitKeys ?? []);
  },
};

/** The kinds a blob may be. */
export const BLOB_KINDS: readonly BlobKind[] = [appImage, bootImage];

function kindOf(head: Uint8Array): BlobKind {
  const k = BLOB_KINDS.find((x) => head.length >= x.magic.length && x.magic.every((b, i) => head[i] === b));
  if (!k) throw new ServerError('E_BLOB_NOT_IMAGE', `the upload is not a Signet app image (SIMG magic) nor a boot image (FIT, d00dfeed)`);
  return k;
}

function refused(kind: BlobKind, e: unknown): ServerError {
  if (e instanceof ServerError) return e;
  const code = (e as { code?: string }).code;
  return new ServerError('E_BLOB_NOT_IMAGE', `the upload is not a usable ${kind.name}: ${code ? code + ' ' : ''}${(e as Error).message}`, e);
}

/**
 * The upload as it streams: the first bytes are checked as soon as they arrive, so a body
 * that is no image is refused before the rest is read or written.
 */
export async function* checkedHead(body: AsyncIterable<Uint8Array>, length: number): AsyncIterable<Uint8Array> {
  const need = Math.max(...BLOB_KINDS.map((k) => Math.max(k.headSize, k.magic.length)));
  let held: Uint8Array[] = [];
  let n = 0;
  let checked = false;
  const check = (head: Uint8Array) => {
    const kind = kindOf(head);
    if (head.length < kind.headSize) throw new ServerError('E_BLOB_NOT_IMAGE', `the upload of ${length} bytes is too short for a ${kind.name}`);
    try {
      kind.checkHead(head, length);
    } catch (e) {
      throw refused(kind, e);
    }
    checked = true;
  };
  for await (const chunk of body) {
    if (checked) {
      yield chunk;
      continue;
    }
    held.push(chunk);
    n += chunk.length;
    if (n < need) continue;
    const head = Buffer.concat(held);
    check(head);
    held = [];
    yield head;
  }
  if (!checked) {
    const head = Buffer.concat(held);
    check(head);
    yield head;
  }
}

/** The full check of a complete blob (called before it becomes visible). */
export function checkBlob(bytes: Uint8Array, ctx: BlobContext): void {
  const kind = kindOf(bytes);
  try {
    kind.check(bytes, ctx);
  } catch (e) {
    throw refused(kind, e);
  }
}
