/**
 * The one function that decides whether an app image may run. No I/O: everything it needs is
 * an argument (bytes, trusted root, board, security-counter floor, clock, crypto), so the boot
 * stage, the OTA agent, `signet verify` and `signet flash` all run exactly this code.
 *
 * Steps, in order (docs/image-format.md §Verification):
 *   1. layout    header fields, caps (format's and slot's), exact length (decodeLayout)
 *   1b. root     the trust anchor is usable (E_ROOT); after the layout, so that a bad root
 *                never hides what is wrong with the image's structure
 *   2. signature ≥ threshold distinct trusted `targets` public keys sign header+manifest
 *   3. manifest  canonical, known fields only, well-typed
 *   4. board     manifest.board === board
 *   5. expiry    manifest.expires > now (only when a clock is available)
 *   6. rollback  manifest.securityCounter ≥ minSecurityCounter
 *   7. payload   sizes tile the payload exactly; every SHA-256 matches
 * Authenticity comes before any use of manifest content; policy before the costly hashing.
 */
import { bytesEqual, fromHex, toHex } from '../util/bytes';
import { isSignetError } from '../util/errors';
import type { RootSigned } from '../ota/metadata';
import type { ImageCrypto } from './crypto';
import { ImageError } from './errors';
import { decodeLayout, type ImageHeader } from './format';
import { decodeManifest, type Manifest } from './manifest';

export interface VerifyOptions {
  /**
   * The verified root metadata (`signed` part) whose `targets` role signs images, or a
   * function that verifies and returns it: called after the layout checks, and whatever it
   * throws becomes E_ROOT (the image format's closed set of verdicts).
   */
  root: RootSigned | (() => RootSigned);
  board: string;
  /** The lowest security counter accepted (the device's floor). Default 0. */
  minSecurityCounter?: number;
  /** Unix seconds now, or null/undefined where the device has no trustworthy clock. */
  now?: number | null;
  crypto: ImageCrypto;
  /** A tighter payload cap than the format's. */
  maxPayloadBytes?: number;
  /** The slot the image must fit (board's slot size): the whole image, E_SIZE_CAP if not. */
  slotBytes?: number;
}

export interface SignatureCheck {
  keyid: string;
  status: 'valid' | 'invalid' | 'unknown-key' | 'duplicate';
}

export interface VerifiedImage {
  header: ImageHeader;
  manifest: Manifest;
  signatures: SignatureCheck[];
  /** Views into the input, in manifest order. */
  payloads: { name: string; type: string; bytes: Uint8Array }[];
  totalSize: number;
}

function resolveRoot(r: VerifyOptions['root']): RootSigned {
  if (typeof r !== 'function') return r;
  try {
    return r();
  } catch (e) {
    if (e instanceof ImageError) throw e;
    const code = isSignetError(e) ? e.code : 'invalid';
    const msg = e && typeof (e as Error).message === 'string' ? (e as Error).message : String(e);
    throw new ImageError('E_ROOT', 'root metadata refused (' + code + '): ' + msg, e);
  }
}

export function verifyImage(bytes: Uint8Array, opts: VerifyOptions): VerifiedImage {
  const crypto = opts.crypto;
  // 1. layout
  const layout = decodeLayout(bytes, opts.maxPayloadBytes, opts.slotBytes);

  // 1b. the trust anchor
  const root = resolveRoot(opts.root);
  const role = root && root.roles && root.roles.targets;
  if (!role || !(role.threshold >= 1) || !root.keys) throw new ImageError('E_ROOT', 'root metadata has no usable targets role');

  // 2. signatures: each distinct trusted public key counts once, whatever key id names it
  const checks: SignatureCheck[] = [];
  const seen: Record<string, boolean> = {};
  const seenKey: Record<string, boolean> = {};
  let valid = 0;
  let invalid = 0;
  let known = 0;
  for (let i = 0; i < layout.signatures.length; i++) {
    const keyid = toHex(layout.signatures[i].keyid);
    if (seen[keyid]) {
      checks.push({ keyid, status: 'duplicate' });
      continue;
    }
    seen[keyid] = true;
    const key = role.keyids.indexOf(keyid) >= 0 && Object.prototype.hasOwnProperty.call(root.keys, keyid) ? root.keys[keyid] : undefined;
    const pub = key && key.keyval ? fromHex(key.keyval.public) : null;
    if (!pub) {
      checks.push({ keyid, status: 'unknown-key' });
      continue;
    }
    const pubHex = '$' + toHex(pub);
    if (seenKey[pubHex]) {
      checks.push({ keyid, status: 'duplicate' });
      continue;
    }
    seenKey[pubHex] = true;
    known++;
    if (crypto.ed25519Verify(layout.signatures[i].signature, layout.signedBytes, pub)) {
      valid++;
      checks.push({ keyid, status: 'valid' });
    } else {
      invalid++;
      checks.push({ keyid, status: 'invalid' });
    }
  }
  if (valid < role.threshold) {
    if (invalid > 0) throw new ImageError('E_SIGNATURE', invalid + ' signature(s) by trusted targets keys do not verify');
    if (known === 0 && layout.signatures.length > 0) {
      throw new ImageError('E_UNKNOWN_KEY', 'image is signed only by keys the root does not trust for targets');
    }
    throw new ImageError('E_THRESHOLD', 'image has ' + valid + ' valid targets signature(s), the root requires ' + role.threshold);
  }

  // 3. manifest
  const manifest = decodeManifest(layout.manifestBytes);

  // 4. board
  if (manifest.board !== opts.board) {
    throw new ImageError('E_BOARD', 'image is for board ' + manifest.board + ', not ' + opts.board);
  }
  // 5. expiry
  if (opts.now !== undefined && opts.now !== null && manifest.expires !== undefined && manifest.expires <= opts.now) {
    throw new ImageError('E_EXPIRED', 'image expired at unix time ' + manifest.expires);
  }
  // 6. rollback
  const floor = opts.minSecurityCounter || 0;
  if (manifest.securityCounter < floor) {
    throw new ImageError('E_ROLLBACK', 'security counter ' + manifest.securityCounter + ' is below the minimum ' + floor);
  }

  // 7. payload
  let total = 0;
  for (let i = 0; i < manifest.payloads.length; i++) total += manifest.payloads[i].size;
  if (total !== layout.header.payloadSize) {
    throw new ImageError('E_MANIFEST', 'payload sizes add up to ' + total + ', header says ' + layout.header.payloadSize);
  }
  const payloads: VerifiedImage['payloads'] = [];
  let off = 0;
  for (let i = 0; i < manifest.payloads.length; i++) {
    const p = manifest.payloads[i];
    const view = layout.payloadBytes.subarray(off, off + p.size);
    off += p.size;
    const want = fromHex(p.sha256);
    if (!want || !bytesEqual(crypto.sha256(view), want)) {
      throw new ImageError('E_DIGEST', 'payload "' + p.name + '" does not match its SHA-256 digest');
    }
    payloads.push({ name: p.name, type: p.type, bytes: view });
  }
  return { header: layout.header, manifest, signatures: checks, payloads, totalSize: layout.totalSize };
}
