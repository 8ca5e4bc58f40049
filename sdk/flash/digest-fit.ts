/**
 * A digest U-Boot can compute without a `hash` or `sha256sum` command: a tiny FIT whose images
 * are external data (`data-position`, relative to the FIT) at the read-back address, each with
 * a SHA-256 hash node holding what that range of storage must hash to. `imxtract <fit> <name>`
 * verifies the named image's hash before anything else (common/image-fit.c, `verify` unset or
 * yes) and prints `sha256+` — or `sha256 error!` and `Bad Data Hash`, status 1. Every U-Boot that
 * can boot a signed FIT has the code; the flasher checks it with the self-test image `t` (the
 * FIT's own 40-byte header) before it trusts a digest decision.
 *
 * Unlike CRC-32, a block that ends in its own checksum cannot cancel this check.
 */
import { createHash } from 'node:crypto';
import { encodeFdt, fdtNode, fdtProp, newFdt, stringValue, u32Value } from '../fit/fdt';

export interface DigestTarget {
  /** Image name in the FIT: letters and digits. */
  name: string;
  /** Bytes from the read-back address. */
  bytes: number;
  sha256: Uint8Array;
}

export const DIGEST_SELF_TEST = 't';
const HEADER_BYTES = 40;

function imageNode(name: string, position: number, bytes: number, sha256: Uint8Array) {
  return fdtNode(name, [fdtProp('data-position', u32Value(position)), fdtProp('data-size', u32Value(bytes)), fdtProp('compression', stringValue('none'))], [
    fdtNode('hash-1', [fdtProp('algo', stringValue('sha256')), fdtProp('value', sha256)]),
  ]);
}

/**
 * The FIT for `targets`, to be loaded at the digest address; `position` is the read-back address
 * minus the digest address.
 */
export function buildDigestFit(targets: readonly DigestTarget[], position: number): Uint8Array {
  const build = (selfTest: Uint8Array): Uint8Array =>
    encodeFdt(
      newFdt(
        fdtNode('', [fdtProp('description', stringValue('signet flash digests')), fdtProp('timestamp', u32Value(0))], [
          fdtNode('images', [], [imageNode(DIGEST_SELF_TEST, 0, HEADER_BYTES, selfTest), ...targets.map((t) => imageNode(t.name, position, t.bytes, t.sha256))]),
        ]),
      ),
    );
  // The header holds only sizes and offsets, so it is the same whatever the hash values are.
  const draft = build(new Uint8Array(32));
  return build(new Uint8Array(createHash('sha256').update(draft.subarray(0, HEADER_BYTES)).digest()));
}

export type DigestVerdict = 'match' | 'differs' | 'unknown';

/**
 * What `imxtract` printed (its output, without the echoed line and status marker) and its
 * status mean. Output damaged on the way back cannot turn a failure into `sha256+` alone on its
 * last line with status 0, nor a success into `Bad Data Hash`; anything else is `unknown`.
 */
export function digestVerdict(output: string, status: number): DigestVerdict {
  const lines = output.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  const at = lines.findIndex((l) => l.startsWith("## Copying '"));
  if (at < 0) return 'unknown';
  const tail = lines.slice(at);
  if (status === 0 && tail.length === 2 && tail[1] === 'sha256+' && /^## Copying '[A-Za-z0-9]+' subimage from FIT image at [0-9a-f]+ \.\.\.$/.test(tail[0]!)) return 'match';
  if (status !== 0 && tail.includes('Bad Data Hash') && tail.includes('sha256 error!')) return 'differs';
  return 'unknown';
}
