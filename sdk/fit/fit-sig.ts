// What a FIT configuration signature covers, shared by the builder (fit.ts)
// and the verifier (fit-verify.ts) so both hash the same bytes.
//
// U-Boot (boot/image-fit-sig.c, fit_config_check_sig) hashes, in blob order:
//   1. the fdt_find_regions() regions of the nodes
//        "/", "/configurations/<conf>", and for every image the configuration
//        references: "/images/<image>" and each of its "hash-*" subnodes,
//      leaving out the properties data, data-size, data-position, data-offset
//      (image data is covered through each hash-* node's value instead);
//   2. the first hashed-strings[1] bytes of the strings block.
// mkimage (tools/image-host.c, fit_config_get_regions) produces the same bytes
// when, as here, there are no external-data properties and hashed-strings
// spans the whole strings block.

import { FitError } from './errors';
import { checkFdtHeader, findNode, readStringList, walkFdtTags, type FdtNode } from './fdt';
import { fdtFindRegions, regionBytes, type FdtRegion } from './fdt-region';
import { sha256 } from './pkcs1';

export const FIT_IMAGES_PATH = '/images';
export const FIT_CONFS_PATH = '/configurations';
export const FIT_HASH_NODE_PREFIX = 'hash';
export const FIT_SIG_NODE_PREFIX = 'signature';
export const FIT_CIPHER_NODE = 'cipher';

/** Properties fit_config_check_sig() leaves out of the signed regions. */
export const FIT_SIG_EXCLUDED_PROPS = ['data', 'data-size', 'data-position', 'data-offset'] as const;

/** Configuration properties that are not image references (fit_config_get_hash_list). */
export const FIT_CONF_NON_IMAGE_PROPS = ['description', 'compatible', 'default'] as const;

export interface ConfigImageRef {
  /** The configuration property naming the image, e.g. "kernel". */
  property: string;
  /** The image node name, e.g. "kernel". */
  image: string;
}

/** Every image reference in a configuration node, in property order. */
export function configImageRefs(conf: FdtNode): ConfigImageRef[] {
  const refs: ConfigImageRef[] = [];
  for (const p of conf.properties) {
    if ((FIT_CONF_NON_IMAGE_PROPS as readonly string[]).includes(p.name)) continue;
    for (const image of readStringList(p.value, `configuration property ${p.name}`)) refs.push({ property: p.name, image });
  }
  return refs;
}

/**
 * The node paths U-Boot hashes for a configuration signature: root, the
 * configuration, then each referenced image with its hash-* (and cipher)
 * subnodes. Images that do not exist are skipped, as U-Boot does.
 */
export function configSignedNodes(root: FdtNode, confName: string, refs: readonly ConfigImageRef[]): string[] {
  const nodes = ['/', `${FIT_CONFS_PATH}/${confName}`];
  const images = findNode(root, FIT_IMAGES_PATH);
  for (const ref of refs) {
    const image = images?.children.find((c) => c.name === ref.image);
    if (!image) continue;
    const imagePath = `${FIT_IMAGES_PATH}/${image.name}`;
    nodes.push(imagePath);
    for (const sub of image.children) {
      if (sub.name.startsWith(FIT_HASH_NODE_PREFIX)) nodes.push(`${imagePath}/${sub.name}`);
    }
    if (image.children.some((c) => c.name === FIT_CIPHER_NODE)) nodes.push(`${imagePath}/${FIT_CIPHER_NODE}`);
  }
  return nodes;
}

export interface SignedRegions {
  regions: FdtRegion[];
  digest: Uint8Array;
}

/** The regions and SHA-256 digest a configuration signature is made over. */
export function configSignatureDigest(blob: Uint8Array, signedNodes: readonly string[], hashedStringsSize: number): SignedRegions {
  const h = checkFdtHeader(blob, { allowTrailingData: true });
  if (hashedStringsSize > h.sizeDtStrings) {
    throw new FitError('E_FIT_BAD_HASHED_STRINGS', `hashed-strings covers ${hashedStringsSize} bytes but the strings block has ${h.sizeDtStrings} — the FIT is corrupt`);
  }
  const regions = fdtFindRegions(blob, signedNodes, FIT_SIG_EXCLUDED_PROPS, { addStringTable: false });
  regions.push({ offset: h.offDtStrings, size: hashedStringsSize });
  return { regions, digest: sha256(regionBytes(blob, regions)) };
}

/**
 * Names of signed properties whose name string lies outside the hashed part
 * of the strings block. Such a name could be changed without breaking the
 * signature; the verifier refuses it (stricter than U-Boot, never true for
 * mkimage or Signet output).
 */
export function unsignedPropertyNames(blob: Uint8Array, signedNodes: readonly string[], hashedStringsSize: number): string[] {
  const h = checkFdtHeader(blob, { allowTrailingData: true });
  const signed = new Set(signedNodes);
  const path: string[] = [];
  const bad: string[] = [];
  for (const tag of walkFdtTags(blob, h)) {
    if (tag.kind === 'begin') path.push(tag.name);
    else if (tag.kind === 'end_node') path.pop();
    else if (tag.kind === 'prop') {
      const p = path.length <= 1 ? '/' : path.join('/');
      const excluded = (FIT_SIG_EXCLUDED_PROPS as readonly string[]).includes(tag.name);
      if (signed.has(p) && !excluded && tag.nameOffset + Buffer.byteLength(tag.name) + 1 > hashedStringsSize) {
        bad.push(`${p}:${tag.name}`);
      }
    }
  }
  return bad;
}
