// Builds a signed U-Boot FIT (.itb): kernel + ramdisk + device tree, one
// configuration signed sha256,rsa2048 the way `mkimage -F -k` signs
// configurations. Same inputs → same bytes (RSASSA-PKCS1-v1_5 is
// deterministic and the timestamp is an input). Layout: docs/fit.md.

import { FitError } from './errors';
import {
  cellsValue,
  decodeFdtHeader,
  encodeFdt,
  fdtNode,
  fdtProp,
  newFdt,
  stringListProp,
  stringProp,
  u32Prop,
  type Fdt,
  type FdtNode,
} from './fdt';
import { configImageRefs, configSignatureDigest, configSignedNodes } from './fit-sig';
import { checkKeyName, FIT_SIGN_ALGO } from './keydtb';
import { RSA2048_BITS, sha256 } from './pkcs1';
import type { RsaSigner } from './signer';

export const FIT_CONFIG_NAME = 'conf-1';
export const FIT_SIG_NODE = 'signature-1';
export const FIT_HASH_NODE = 'hash-1';
export const FIT_HASH_ALGO = 'sha256';
export const FIT_SIGNER_NAME = 'signet';
export const FIT_SIGNATURE_BYTES = RSA2048_BITS / 8;

/** Image node names, which are also the configuration's property names. */
export const FIT_KERNEL = 'kernel';
export const FIT_RAMDISK = 'ramdisk';
export const FIT_FDT = 'fdt';
/** The images the configuration signature names in sign-images, in mkimage's order. */
export const FIT_SIGN_IMAGES = [FIT_KERNEL, FIT_FDT, FIT_RAMDISK] as const;

/** U-Boot arch names (boot/image.c uimage_arch). */
export type FitArch = 'arm64' | 'arm';
const ARCHES: readonly FitArch[] = ['arm64', 'arm'];

export type FitAddress = number | bigint;

export interface FitImageInput {
  data: Uint8Array;
  description?: string;
  /** Where U-Boot copies the image before use; omit to use it in place. */
  loadAddress?: FitAddress;
}

/**
 * How an image's `data` is compressed (U-Boot's `compression` property). U-Boot's bootm unpacks
 * a gzip or lzma ("LZMA alone": 13-byte header, as `xz --format=lzma` writes) kernel to its load
 * address (and refuses one whose unpacked size exceeds CONFIG_SYS_BOOTM_LEN or overlaps the
 * FIT); other images stay "none" here — a compressed initramfs is declared "none" because the
 * kernel, not U-Boot, unpacks it. verifyFit refuses any other value. Not "zstd" (nor "bzip2"):
 * Debian's U-Boot 2023.01 qemu_arm64 names it but has no decompressor for it ("Unimplemented
 * compression type 6" at bootm; docs/kernel.md), so such a FIT would be refused at boot.
 */
export type FitCompression = 'none' | 'gzip' | 'lzma';
export const FIT_COMPRESSIONS: readonly FitCompression[] = ['none', 'gzip', 'lzma'];

export interface FitKernelInput {
  data: Uint8Array;
  description?: string;
  loadAddress: FitAddress;
  entryAddress: FitAddress;
  /** Default "none". "gzip" data must be a gzip stream (RFC 1952), "lzma" an LZMA alone stream. */
  compression?: FitCompression;
}

export interface BuildFitInput {
  description: string;
  arch: FitArch;
  /** Seconds since the Unix epoch, written to / and to the signature node. */
  timestamp: number;
  kernel: FitKernelInput;
  ramdisk: FitImageInput;
  fdt: FitImageInput;
  /** Name of the signing key: key-name-hint here, key-<name> in U-Boot's DTB. */
  keyName: string;
  signer: RsaSigner;
  configDescription?: string;
  /** Cells per load/entry address (root #address-cells); 1 unless RAM is above 4 GiB. */
  addressCells?: 1 | 2;
  /**
   * Extra properties of the root node, after #address-cells (e.g. Signet's `signet,tcb` record).
   * The root node is one of the signed nodes, so they are covered by the configuration
   * signature; U-Boot ignores root properties it does not know.
   */
  rootProperties?: readonly { name: string; value: Uint8Array }[];
}

const ROOT_PROPS = ['timestamp', 'description', '#address-cells'];

function fail(message: string): never {
  throw new FitError('E_FIT_BAD_INPUT', message);
}

function checkInput(input: BuildFitInput): void {
  if (!ARCHES.includes(input.arch)) fail(`arch ${JSON.stringify(input.arch)} is not supported — use "arm64" or "arm"`);
  if (!Number.isInteger(input.timestamp) || input.timestamp < 0 || input.timestamp > 0xffffffff) {
    fail(`timestamp ${input.timestamp} is not whole seconds since 1970 within 32 bits — pass e.g. SOURCE_DATE_EPOCH`);
  }
  checkKeyName(input.keyName);
  for (const [name, img] of [[FIT_KERNEL, input.kernel], [FIT_RAMDISK, input.ramdisk], [FIT_FDT, input.fdt]] as const) {
    if (!(img?.data instanceof Uint8Array)) fail(`${name} data is missing — pass its bytes as a Uint8Array`);
  }
  const names = new Set(ROOT_PROPS);
  for (const p of input.rootProperties ?? []) {
    // A vendor prefix keeps an extra property clear of the names U-Boot and mkimage give meaning to.
    if (typeof p?.name !== 'string' || !/^[a-z][a-z0-9-]*,[a-z0-9][a-z0-9-]*$/.test(p.name) || names.has(p.name)) {
      fail(`root property ${JSON.stringify(p?.name)} is not a unique "vendor,name" property name — name it like "signet,tcb"`);
    }
    if (!(p.value instanceof Uint8Array)) fail(`root property ${p.name} has no bytes — pass its value as a Uint8Array`);
    names.add(p.name);
  }
  const comp = input.kernel.compression ?? 'none';
  if (!FIT_COMPRESSIONS.includes(comp)) fail(`kernel compression ${JSON.stringify(comp)} is not supported — use "none", "gzip" or "lzma"`);
  const d = input.kernel.data;
  if (comp === 'gzip' && !(d.length >= 18 && d[0] === 0x1f && d[1] === 0x8b && d[2] === 0x08)) {
    fail('kernel compression is "gzip" but its data is not a gzip (deflate) stream — compress it, or declare "none"');
  }
  // LZMA alone has no magic: its properties byte (lc, lp, pb) must be valid and a header present.
  if (comp === 'lzma' && !(d.length >= 18 && d[0]! < 225 && !(d[0] === 0x1f && d[1] === 0x8b))) {
    fail('kernel compression is "lzma" but its data is not an LZMA alone stream — compress it with `xz --format=lzma`, or declare "none"');
  }
}

function addressValue(addr: FitAddress, cells: 1 | 2, what: string): Uint8Array {
  const n = BigInt(addr);
  const max = cells === 1 ? 0xffffffffn : 0xffffffffffffffffn;
  if (n < 0n || n > max) fail(`${what} 0x${n.toString(16)} does not fit in ${cells} address cell(s) — pass addressCells: 2 for addresses above 4 GiB`);
  return cellsValue([n], cells);
}

function hashNode(data: Uint8Array): FdtNode {
  // Property order as in mkimage output: libfdt inserts a new property at the
  // start of its node, so the computed value lands before the .its's algo.
  return fdtNode(FIT_HASH_NODE, [fdtProp('value', sha256([data])), stringProp('algo', FIT_HASH_ALGO)]);
}

function imageNode(
  name: string,
  img: FitImageInput | FitKernelInput,
  type: string,
  arch: FitArch,
  os: string | undefined,
  cells: 1 | 2,
  defaultDescription: string,
): FdtNode {
  const props = [
    stringProp('description', img.description ?? defaultDescription),
    fdtProp('data', img.data),
    stringProp('type', type),
    stringProp('arch', arch),
  ];
  if (os) props.push(stringProp('os', os));
  props.push(stringProp('compression', 'compression' in img && img.compression ? img.compression : 'none'));
  if (img.loadAddress !== undefined) props.push(fdtProp('load', addressValue(img.loadAddress, cells, `${name} load address`)));
  if ('entryAddress' in img) props.push(fdtProp('entry', addressValue(img.entryAddress, cells, `${name} entry address`)));
  return fdtNode(name, props, [hashNode(img.data)]);
}

function fitTree(input: BuildFitInput, signature: Uint8Array, hashedStrings: number): Fdt {
  const cells = input.addressCells ?? 1;
  const images = fdtNode('images', [], [
    imageNode(FIT_KERNEL, input.kernel, 'kernel', input.arch, 'linux', cells, 'Linux kernel'),
    imageNode(FIT_RAMDISK, input.ramdisk, 'ramdisk', input.arch, 'linux', cells, 'initramfs'),
    // The device tree goes last: U-Boot may grow it in place (fdt_high=~0),
    // which then only overwrites FIT bytes it has already verified.
    imageNode(FIT_FDT, input.fdt, 'flat_dt', input.arch, undefined, cells, 'device tree'),
  ]);
  const hashedNodes = signedNodeList();
  // Same property order as mkimage's output: what fit_image_write_sig() adds
  // (each new property inserted first by libfdt), then the .its's own three.
  const signatureNode = fdtNode(FIT_SIG_NODE, [
    // [0] is a legacy offset that must stay 0; [1] is how much of the strings block is signed.
    fdtProp('hashed-strings', cellsValue([0, hashedStrings], 1)),
    stringListProp('hashed-nodes', hashedNodes),
    u32Prop('timestamp', input.timestamp),
    stringProp('signer-name', FIT_SIGNER_NAME),
    fdtProp('value', signature),
    stringProp('algo', FIT_SIGN_ALGO),
    stringProp('key-name-hint', input.keyName),
    stringListProp('sign-images', FIT_SIGN_IMAGES),
  ]);
  const conf = fdtNode(
    FIT_CONFIG_NAME,
    [
      stringProp('description', input.configDescription ?? input.description),
      stringProp(FIT_KERNEL, FIT_KERNEL),
      stringProp(FIT_FDT, FIT_FDT),
      stringProp(FIT_RAMDISK, FIT_RAMDISK),
    ],
    [signatureNode],
  );
  const configurations = fdtNode('configurations', [stringProp('default', FIT_CONFIG_NAME)], [conf]);
  return newFdt(
    fdtNode(
      '',
      [
        u32Prop('timestamp', input.timestamp),
        stringProp('description', input.description),
        u32Prop('#address-cells', cells),
        ...(input.rootProperties ?? []).map((p) => fdtProp(p.name, p.value)),
      ],
      [images, configurations],
    ),
  );
}

/** hashed-nodes as mkimage writes it: root, configuration, then sign-images order. */
function signedNodeList(): string[] {
  const nodes = ['/', `/configurations/${FIT_CONFIG_NAME}`];
  for (const image of FIT_SIGN_IMAGES) nodes.push(`/images/${image}`, `/images/${image}/${FIT_HASH_NODE}`);
  return nodes;
}

export function buildFit(input: BuildFitInput): Uint8Array {
  checkInput(input);
  const placeholder = new Uint8Array(FIT_SIGNATURE_BYTES);

  // Pass 1 fixes the strings block; only property values change afterwards,
  // and every later value has the same length, so no offset moves.
  const draft = encodeFdt(fitTree(input, placeholder, 0));
  const hashedStrings = decodeFdtHeader(draft).sizeDtStrings;
  const unsigned = encodeFdt(fitTree(input, placeholder, hashedStrings));

  const tree = fitTree(input, placeholder, hashedStrings);
  const conf = tree.root.children[1]!.children[0]!;
  const nodes = configSignedNodes(tree.root, FIT_CONFIG_NAME, configImageRefs(conf));
  const { digest } = configSignatureDigest(unsigned, nodes, hashedStrings);

  const signature = input.signer.sign(digest);
  if (signature.length !== FIT_SIGNATURE_BYTES) {
    throw new FitError('E_FIT_BAD_SIGNATURE_LENGTH', `signer returned ${signature.length} bytes, expected ${FIT_SIGNATURE_BYTES} for rsa2048 — use an RSA-2048 key`);
  }
  const signed = encodeFdt(fitTree(input, signature, hashedStrings));
  if (signed.length !== unsigned.length) {
    throw new Error('internal: signing moved FIT offsets');
  }
  return signed;
}
