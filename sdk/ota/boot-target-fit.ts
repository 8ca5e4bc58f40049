/**
 * The boot-image check the OTA agent makes before it writes a boot slot, in ES5 so that it runs
 * in the device's engine (Duktape) as well as on Node: the same checks as U-Boot's bootm and
 * sdk/fit/fit-verify.ts (which it is tested against, tests/ota-boot-target.test.ts), on its own
 * small FDT walker, with the two expensive steps behind `FitCrypto`:
 *
 *   sha256(data)                                     the C host's, or node:crypto
 *   rsaVerify(modulus, exponent, digest, signature)  RSASSA-PKCS1-v1_5 / SHA-256 (RFC 8017 8.2.2):
 *                                                    mbedTLS in the C host (host.c), the BigInt
 *                                                    verifier of sdk/fit/pkcs1.ts on Node
 *
 * There is no pure-JS RSA on the device: a host without rsaVerify cannot check a boot image, and
 * the agent then refuses boot offers (E_BOOT_FIT_KEY). Both rsaVerify implementations refuse the
 * same malformed inputs first (`rsaInputsAcceptable`): a key that is not RSA-2048, an exponent
 * that is not 1..4 bytes, a digest that is not 32 bytes, a signature that is not 256 bytes.
 *
 * Steps (docs/fit.md; U-Boot boot/image-fit-sig.c): 1. a well-formed FDT with /images and
 * /configurations and the default configuration, no unit addresses; 2. for every key, one
 * signature-* node of that configuration with algo sha256,rsa2048 (padding pkcs-1.5 or none),
 * hashed-nodes naming exactly the nodes the configuration covers, hashed-strings <0 size> covering
 * every signed property's name, and a signature over the fdt_find_regions() bytes of those nodes
 * (data properties left out) plus the hashed strings; 3. every image the configuration uses has
 * its data inline, no cipher, a known compression and sha256 hash-* nodes that match. Then the
 * signed release fields (signet,board / signet,version / signet,security-counter).
 */
import { SEMVER, BOARD_ID } from '../image/manifest';
import { FdtError, FitError } from '../fit/errors';
import { BootTargetError } from './boot-target-errors';

export interface FitCrypto {
  sha256(data: Uint8Array): Uint8Array;
  /** False, never a throw, for a signature that does not verify or inputs that are malformed. */
  rsaVerify(modulus: Uint8Array, exponent: Uint8Array, digest: Uint8Array, signature: Uint8Array): boolean;
}

/** A FIT public key as U-Boot holds it (`/signature/key-<name>`): big-endian modulus and exponent. */
export interface BootFitKey {
  keyName: string;
  publicKey: { modulus: Uint8Array; exponent: Uint8Array };
}

export interface BootRelease {
  board: string;
  version: string;
  securityCounter: number;
  /** The kernel's U-Boot arch ("arm64", "arm"). */
  arch: string;
}

export const BOOT_BOARD_PROPERTY = 'signet,board';
export const BOOT_VERSION_PROPERTY = 'signet,version';
export const BOOT_COUNTER_PROPERTY = 'signet,security-counter';

export const RSA2048_BYTES = 256;
const SIGN_ALGO = 'sha256,rsa2048';
const COMPRESSIONS = ['none', 'gzip', 'lzma'];
const EXCLUDED_PROPS = ['data', 'data-size', 'data-position', 'data-offset'];
const CONF_NON_IMAGE_PROPS = ['description', 'compatible', 'default'];
const MAX_DEPTH = 32;
const MAX_NODES = 4096;
const HEADER = 40;

/** The inputs both rsaVerify implementations accept; anything else is false without arithmetic. */
export function rsaInputsAcceptable(modulus: Uint8Array, exponent: Uint8Array, digest: Uint8Array, signature: Uint8Array): boolean {
  if (!modulus || !exponent || !digest || !signature) return false;
  if (modulus.length !== RSA2048_BYTES || modulus[0] < 0x80 || (modulus[RSA2048_BYTES - 1] & 1) === 0) return false;
  if (exponent.length < 1 || exponent.length > 4 || exponent[0] === 0 || (exponent[exponent.length - 1] & 1) === 0) return false;
  if (exponent.length === 1 && exponent[0] < 3) return false;
  return digest.length === 32 && signature.length === RSA2048_BYTES;
}

interface Prop { name: string; nameOffset: number; value: Uint8Array }
interface Node { name: string; props: Prop[]; children: Node[] }
interface Tag { kind: number; offset: number; next: number; name: string; path: string; nameOffset: number }

const BEGIN = 1;
const END_NODE = 2;
const PROP = 3;
const NOP = 4;
const END = 9;

function u32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

function fdtFail(code: 'E_FDT_BAD_MAGIC' | 'E_FDT_BAD_VERSION' | 'E_FDT_TRUNCATED' | 'E_FDT_BAD_OFFSET' | 'E_FDT_BAD_TOKEN' | 'E_FDT_BAD_STRING' | 'E_FDT_NESTING' | 'E_FDT_BAD_STRUCTURE' | 'E_FDT_LIMIT' | 'E_FDT_BAD_NAME', m: string): never {
  throw new FdtError(code, m + ' — the boot image is corrupt');
}

function fitFail(code: ConstructorParameters<typeof FitError>[0], m: string): never {
  throw new FitError(code, m);
}

/** A NUL-terminated ASCII string at `at`, ending before `end`. */
function cString(b: Uint8Array, at: number, end: number): { text: string; next: number } {
  let s = '';
  for (let i = at; i < end; i++) {
    const c = b[i];
    if (c === 0) return { text: s, next: i + 1 };
    if (c < 0x20 || c > 0x7e) fdtFail('E_FDT_BAD_STRING', 'a name holds a byte that is not printable ASCII');
    s += String.fromCharCode(c);
  }
  return fdtFail('E_FDT_BAD_STRING', 'a name is not terminated');
}

interface Parsed {
  root: Node;
  tags: Tag[];
  offStruct: number;
  sizeStruct: number;
  offStrings: number;
  sizeStrings: number;
}

/** Header checks as checkFdtHeader (trailing data allowed: a slot is larger than its FIT), then one walk: tree and tags. */
function parseFdt(b: Uint8Array): Parsed {
  if (b.length < HEADER) fdtFail('E_FDT_TRUNCATED', 'shorter than a device tree header');
  if (u32(b, 0) !== 0xd00dfeed) fdtFail('E_FDT_BAD_MAGIC', 'not a device tree');
  const total = u32(b, 4);
  const offStruct = u32(b, 8);
  const offStrings = u32(b, 12);
  const offRsv = u32(b, 16);
  const version = u32(b, 20);
  const lastComp = u32(b, 24);
  const sizeStrings = u32(b, 32);
  const sizeStruct = u32(b, 36);
  if (version < 17 || lastComp > 17) fdtFail('E_FDT_BAD_VERSION', 'device tree version ' + version + ' is not 17');
  if (total < HEADER || b.length < total) fdtFail('E_FDT_TRUNCATED', 'the device tree is shorter than its header says');
  const inside = function (off: number, size: number): boolean { return off >= HEADER && size >= 0 && off + size <= total; };
  if (offRsv % 8 !== 0 || !inside(offRsv, 16)) fdtFail('E_FDT_BAD_OFFSET', 'memory reservation block outside the tree');
  if (offStruct % 4 !== 0 || !inside(offStruct, sizeStruct)) fdtFail('E_FDT_BAD_OFFSET', 'structure block outside the tree');
  if (!inside(offStrings, sizeStrings)) fdtFail('E_FDT_BAD_OFFSET', 'strings block outside the tree');
  if (offStruct < offStrings + sizeStrings && offStrings < offStruct + sizeStruct) fdtFail('E_FDT_BAD_OFFSET', 'structure and strings blocks overlap');

  const tags: Tag[] = [];
  const stack: Node[] = [];
  const names: string[] = [];
  let root: Node | null = null;
  let at = 0;
  let nodes = 0;
  let ended = false;
  while (!ended) {
    if (at + 4 > sizeStruct) fdtFail('E_FDT_TRUNCATED', 'the structure block ends inside a token');
    const abs = offStruct + at;
    const tok = u32(b, abs);
    const tag: Tag = { kind: tok, offset: at, next: 0, name: '', path: '', nameOffset: 0 };
    if (tok === BEGIN) {
      const s = cString(b, abs + 4, offStruct + sizeStruct);
      const next = ((s.next - offStruct) + 3) & ~3;
      if (stack.length === 0 && (root !== null || s.text !== '')) fdtFail('E_FDT_BAD_STRUCTURE', root ? 'a second root node' : 'the root node has a name');
      if (stack.length >= MAX_DEPTH) fdtFail('E_FDT_NESTING', 'nodes nest deeper than ' + MAX_DEPTH + ' levels');
      if (stack.length > 0 && (s.text === '' || s.text.indexOf('/') >= 0)) fdtFail('E_FDT_BAD_NAME', 'a node name is empty or holds a /');
      if (++nodes > MAX_NODES) fdtFail('E_FDT_LIMIT', 'more than ' + MAX_NODES + ' nodes');
      const n: Node = { name: s.text, props: [], children: [] };
      if (stack.length) stack[stack.length - 1].children.push(n);
      else root = n;
      stack.push(n);
      names.push(s.text);
      tag.name = s.text;
      tag.path = names.length <= 1 ? '/' : names.join('/');
      tag.next = next;
    } else if (tok === END_NODE) {
      if (!stack.length) fdtFail('E_FDT_NESTING', 'FDT_END_NODE closes no node');
      stack.pop();
      names.pop();
      tag.next = at + 4;
    } else if (tok === PROP) {
      if (!stack.length) fdtFail('E_FDT_BAD_STRUCTURE', 'a property outside any node');
      if (at + 12 > sizeStruct) fdtFail('E_FDT_TRUNCATED', 'a property header runs past the structure block');
      const len = u32(b, abs + 4);
      const nameOff = u32(b, abs + 8);
      if (len > sizeStruct - at - 12) fdtFail('E_FDT_TRUNCATED', 'a property value runs past the structure block');
      if (nameOff >= sizeStrings) fdtFail('E_FDT_BAD_STRING', 'a property name lies outside the strings block');
      const nm = cString(b, offStrings + nameOff, offStrings + sizeStrings);
      const p: Prop = { name: nm.text, nameOffset: nameOff, value: b.subarray(abs + 12, abs + 12 + len) };
      stack[stack.length - 1].props.push(p);
      tag.name = nm.text;
      tag.nameOffset = nameOff;
      tag.path = names.length <= 1 ? '/' : names.join('/');
      tag.next = (at + 12 + len + 3) & ~3;
    } else if (tok === NOP) {
      tag.next = at + 4;
    } else if (tok === END) {
      if (stack.length) fdtFail('E_FDT_NESTING', 'FDT_END with nodes still open');
      tag.next = at + 4;
      if (tag.next !== sizeStruct) fdtFail('E_FDT_BAD_STRUCTURE', 'FDT_END is not the end of the structure block');
      ended = true;
    } else {
      fdtFail('E_FDT_BAD_TOKEN', 'unknown structure token 0x' + tok.toString(16));
    }
    if (tag.next > sizeStruct) fdtFail('E_FDT_TRUNCATED', 'a token runs past the structure block');
    tags.push(tag);
    at = tag.next;
  }
  if (!root) fdtFail('E_FDT_BAD_STRUCTURE', 'no root node');
  return { root: root as Node, tags: tags, offStruct: offStruct, sizeStruct: sizeStruct, offStrings: offStrings, sizeStrings: sizeStrings };
}

function prop(n: Node, name: string): Uint8Array | null {
  for (let i = 0; i < n.props.length; i++) if (n.props[i].name === name) return n.props[i].value;
  return null;
}

function child(n: Node, name: string): Node | null {
  for (let i = 0; i < n.children.length; i++) if (n.children[i].name === name) return n.children[i];
  return null;
}

/** A string property: NUL-terminated, no NUL inside (readString). */
function str(v: Uint8Array, what: string): string {
  if (v.length === 0 || v[v.length - 1] !== 0) fitFail('E_FIT_NOT_A_FIT', what + ' is not a string');
  let s = '';
  for (let i = 0; i < v.length - 1; i++) {
    if (v[i] === 0) fitFail('E_FIT_NOT_A_FIT', what + ' is not a single string');
    s += String.fromCharCode(v[i]);
  }
  return s;
}

function strList(v: Uint8Array, what: string): string[] {
  if (v.length === 0 || v[v.length - 1] !== 0) fitFail('E_FIT_NOT_A_FIT', what + ' is not a string list');
  const out: string[] = [];
  let s = '';
  for (let i = 0; i < v.length; i++) {
    if (v[i] === 0) {
      if (s === '') fitFail('E_FIT_NOT_A_FIT', what + ' holds an empty string');
      out.push(s);
      s = '';
    } else s += String.fromCharCode(v[i]);
  }
  return out;
}

function optStr(n: Node, name: string, what: string): string | undefined {
  const v = prop(n, name);
  return v ? str(v, what + ' ' + name) : undefined;
}

function startsWith(s: string, p: string): boolean {
  return s.slice(0, p.length) === p;
}

function noUnitAddress(n: Node, path: string): void {
  if (n.name.indexOf('@') >= 0) fitFail('E_FIT_UNIT_ADDRESS', 'node ' + path + ' has a unit address (\'@\'), which signature checking forbids');
}

function isIn(list: string[], s: string): boolean {
  for (let i = 0; i < list.length; i++) if (list[i] === s) return true;
  return false;
}

/** fdt_find_regions() over the walked tags (sdk/fit/fdt-region.ts, U-Boot boot/fdt_region.c), without the string table. */
function findRegions(f: Parsed, include: string[]): { offset: number; size: number }[] {
  const base = f.offStruct;
  const regions: { offset: number; size: number }[] = [];
  const wantStack: number[] = [];
  let want = 0;
  let start = -1;
  let depth = -1;
  for (let i = 0; i < f.tags.length; i++) {
    const t = f.tags[i];
    let included = false;
    let stopAt = t.next;
    if (t.kind === PROP) {
      included = want >= 2 && !isIn(EXCLUDED_PROPS, t.name);
      stopAt = t.offset;
    } else if (t.kind === NOP) {
      included = want >= 2;
      stopAt = t.offset;
    } else if (t.kind === BEGIN) {
      depth++;
      wantStack[depth] = want;
      if (want === 1) stopAt = t.offset;
      if (isIn(include, t.path)) want = 2;
      else if (want) want--;
      else stopAt = t.offset;
      included = want > 0;
    } else if (t.kind === END_NODE) {
      included = want > 0;
      want = wantStack[depth--];
    } else {
      included = true;
    }
    if (included && start === -1) {
      const last = regions.length ? regions[regions.length - 1] : null;
      if (last && t.offset === last.offset + last.size - base) start = (regions.pop() as { offset: number }).offset - base;
      else start = t.offset;
    }
    if (!included && start !== -1) {
      regions.push({ offset: base + start, size: stopAt - start });
      start = -1;
    }
  }
  regions.push({ offset: base + start, size: f.sizeStruct - start });
  return regions;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** Step 2 for one signature node and one key (fit_config_check_sig). */
function checkSignature(fit: Uint8Array, f: Parsed, confName: string, conf: Node, sig: Node, key: BootFitKey, c: FitCrypto): void {
  const where = '/configurations/' + confName + '/' + sig.name;
  const algo = optStr(sig, 'algo', where);
  if (algo !== SIGN_ALGO) fitFail('E_FIT_UNSUPPORTED_ALGO', where + ' uses algorithm ' + (algo || '(none)') + ', only ' + SIGN_ALGO + ' is supported');
  const padding = optStr(sig, 'padding', where);
  if (padding !== undefined && padding !== 'pkcs-1.5') fitFail('E_FIT_UNSUPPORTED_ALGO', where + ' uses padding ' + padding + ', only pkcs-1.5 is supported');
  const value = prop(sig, 'value');
  if (!value) fitFail('E_FIT_NO_SIGNATURE', where + ' has no value');
  // What the configuration covers: root, itself, each image it uses and that image's hash-* (and cipher) nodes.
  const images = child(f.root, 'images') as Node;
  const signed = ['/', '/configurations/' + confName];
  const refs = imageRefs(conf);
  for (let i = 0; i < refs.length; i++) {
    const img = child(images, refs[i].image);
    if (!img) continue;
    const p = '/images/' + img.name;
    signed.push(p);
    for (let j = 0; j < img.children.length; j++) if (startsWith(img.children[j].name, 'hash')) signed.push(p + '/' + img.children[j].name);
    if (child(img, 'cipher')) signed.push(p + '/cipher');
  }
  if (signed.length <= 2) fitFail('E_FIT_MISSING_IMAGE', 'configuration ' + confName + ' references no existing image');
  const hashedNodes = prop(sig, 'hashed-nodes');
  if (!hashedNodes) fitFail('E_FIT_HASHED_NODES_MISMATCH', where + ' has no hashed-nodes');
  const listed = strList(hashedNodes as Uint8Array, where + ' hashed-nodes');
  let same = true;
  for (let i = 0; i < listed.length; i++) if (!isIn(signed, listed[i])) same = false;
  for (let i = 0; i < signed.length; i++) if (!isIn(listed, signed[i])) same = false;
  if (!same) fitFail('E_FIT_HASHED_NODES_MISMATCH', where + ' hashed-nodes names [' + listed.join(', ') + '] but the configuration covers [' + signed.join(', ') + ']');
  const hs = prop(sig, 'hashed-strings');
  if (!hs || hs.length !== 8 || u32(hs, 0) !== 0) fitFail('E_FIT_BAD_HASHED_STRINGS', where + ' hashed-strings is missing or not <0 size>');
  const stringsSize = u32(hs as Uint8Array, 4);
  if (stringsSize > f.sizeStrings) fitFail('E_FIT_BAD_HASHED_STRINGS', where + ' hashed-strings covers more than the strings block');
  // Every signed property's name must lie in the hashed strings (stricter than U-Boot; as fit-verify.ts).
  for (let i = 0; i < f.tags.length; i++) {
    const t = f.tags[i];
    if (t.kind !== PROP || !isIn(signed, t.path) || isIn(EXCLUDED_PROPS, t.name)) continue;
    if (t.nameOffset + t.name.length + 1 > stringsSize) fitFail('E_FIT_BAD_HASHED_STRINGS', where + ' leaves the name of ' + t.path + ':' + t.name + ' unsigned');
  }
  const regions = findRegions(f, signed);
  regions.push({ offset: f.offStrings, size: stringsSize });
  let n = 0;
  for (let i = 0; i < regions.length; i++) n += regions[i].size;
  const all = new Uint8Array(n);
  let o = 0;
  for (let i = 0; i < regions.length; i++) {
    all.set(fit.subarray(regions[i].offset, regions[i].offset + regions[i].size), o);
    o += regions[i].size;
  }
  const digest = c.sha256(all);
  const pk = key.publicKey;
  if (!rsaInputsAcceptable(pk.modulus, pk.exponent, digest, value as Uint8Array) || c.rsaVerify(pk.modulus, pk.exponent, digest, value as Uint8Array) !== true) {
    fitFail('E_FIT_SIGNATURE_INVALID', where + ' is not a valid signature by key ' + key.keyName + ' — the FIT was altered or signed with another key');
  }
}

function imageRefs(conf: Node): { property: string; image: string }[] {
  const refs: { property: string; image: string }[] = [];
  for (let i = 0; i < conf.props.length; i++) {
    const p = conf.props[i];
    if (isIn(CONF_NON_IMAGE_PROPS, p.name)) continue;
    const list = strList(p.value, 'configuration property ' + p.name);
    for (let j = 0; j < list.length; j++) refs.push({ property: p.name, image: list[j] });
  }
  return refs;
}

/** Step 3 for one image (fit_image_verify); returns its arch. */
function checkImage(img: Node, c: FitCrypto): string {
  const where = '/images/' + img.name;
  if (prop(img, 'data-offset') || prop(img, 'data-position') || prop(img, 'data-size')) fitFail('E_FIT_EXTERNAL_DATA', where + ' keeps its data outside the FIT');
  if (child(img, 'cipher')) fitFail('E_FIT_UNSUPPORTED_ALGO', where + ' is encrypted');
  const comp = optStr(img, 'compression', where);
  if (comp !== undefined && !isIn(COMPRESSIONS, comp)) fitFail('E_FIT_UNSUPPORTED_COMPRESSION', where + ' is compressed "' + comp + '"');
  const data = prop(img, 'data');
  if (!data) fitFail('E_FIT_MISSING_IMAGE', where + ' has no data');
  const digest = c.sha256(data as Uint8Array);
  let hashes = 0;
  for (let i = 0; i < img.children.length; i++) {
    const h = img.children[i];
    if (!startsWith(h.name, 'hash')) continue;
    hashes++;
    noUnitAddress(h, where + '/' + h.name);
    const algo = optStr(h, 'algo', where + '/' + h.name);
    if (algo !== 'sha256') fitFail('E_FIT_UNSUPPORTED_ALGO', where + '/' + h.name + ' uses hash ' + (algo || '(none)') + ', only sha256 is supported');
    const v = prop(h, 'value');
    if (!v || !sameBytes(v, digest)) fitFail('E_FIT_HASH_MISMATCH', where + ' data does not match its ' + h.name + ' sha256 — the image was altered or corrupted');
  }
  if (hashes === 0) fitFail('E_FIT_NO_HASH', where + ' has no hash node');
  return optStr(img, 'arch', where) || '';
}

/**
 * Verify a boot image as U-Boot's bootm would, against every key in `keys`, then read its signed
 * release fields. Throws FdtError / FitError codes (as sdk/fit) for a FIT that does not verify,
 * E_BOOT_FIT_KEY without keys, E_BOOT_RELEASE for one without release fields.
 */
export function verifyBootFit(fit: Uint8Array, keys: readonly BootFitKey[], c: FitCrypto): BootRelease {
  if (!keys || !keys.length) throw new BootTargetError('E_BOOT_FIT_KEY', 'no FIT public key to verify the boot image with');
  const f = parseFdt(fit);
  const root = f.root;
  const images = child(root, 'images');
  const confs = child(root, 'configurations');
  if (!images || !confs) fitFail('E_FIT_NOT_A_FIT', 'device tree has no /images or /configurations node');
  const dflt = prop(confs as Node, 'default');
  const confName = dflt ? str(dflt, 'default') : '';
  if (!confName) fitFail('E_FIT_NO_CONFIG', 'FIT has no default configuration');
  const conf = child(confs as Node, confName);
  if (!conf) fitFail('E_FIT_NO_CONFIG', 'FIT has no configuration ' + confName);
  const cf = conf as Node;
  noUnitAddress(cf, '/configurations/' + confName);
  for (let i = 0; i < cf.children.length; i++) noUnitAddress(cf.children[i], '/configurations/' + confName + '/' + cf.children[i].name);
  for (let i = 0; i < (images as Node).children.length; i++) noUnitAddress((images as Node).children[i], '/images/' + (images as Node).children[i].name);
  for (let k = 0; k < keys.length; k++) {
    let last: unknown = null;
    let ok = false;
    let sigs = 0;
    for (let i = 0; i < cf.children.length && !ok; i++) {
      const s = cf.children[i];
      if (!startsWith(s.name, 'signature')) continue;
      sigs++;
      try {
        checkSignature(fit, f, confName, cf, s, keys[k], c);
        ok = true;
      } catch (e) {
        if (!(e instanceof FitError)) throw e;
        last = e;
      }
    }
    if (sigs === 0) fitFail('E_FIT_NO_SIGNATURE', 'configuration ' + confName + ' has no signature node');
    if (!ok) throw last;
  }
  let arch = '';
  const refs = imageRefs(cf);
  for (let i = 0; i < refs.length; i++) {
    const img = child(images as Node, refs[i].image);
    if (!img) fitFail('E_FIT_MISSING_IMAGE', 'configuration ' + confName + ' references image ' + refs[i].image + ', which the FIT does not have');
    const a = checkImage(img as Node, c);
    if (refs[i].property === 'kernel') arch = a;
  }
  const board = prop(root, BOOT_BOARD_PROPERTY);
  const version = prop(root, BOOT_VERSION_PROPERTY);
  const counter = prop(root, BOOT_COUNTER_PROPERTY);
  if (!board || !version || !counter || counter.length !== 4) {
    throw new BootTargetError('E_BOOT_RELEASE', 'the boot image carries no signed ' + BOOT_BOARD_PROPERTY + ', ' + BOOT_VERSION_PROPERTY + ' and ' + BOOT_COUNTER_PROPERTY);
  }
  const b = str(board, BOOT_BOARD_PROPERTY);
  const v = str(version, BOOT_VERSION_PROPERTY);
  if (!BOARD_ID.test(b) || !SEMVER.test(v)) {
    throw new BootTargetError('E_BOOT_RELEASE', 'the boot image\'s release fields (' + JSON.stringify(b) + ', ' + JSON.stringify(v) + ') are not a board id and a semantic version');
  }
  return { board: b, version: v, securityCounter: u32(counter, 0), arch: arch };
}
