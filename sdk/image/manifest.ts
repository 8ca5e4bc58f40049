/**
 * The app image manifest: canonical JSON (docs/image-format.md §Manifest) checked against one
 * field table. Decoding is strict and fails closed: unknown fields, missing fields, wrong
 * types, non-canonical encoding (whitespace, key order, duplicate keys, floats, escapes beyond
 * `\"` and `\\`) and non-ASCII bytes are all E_MANIFEST.
 */
import { asciiDecode, isUint, utf8Encode } from '../util/bytes';
import { canonicalString } from '../util/canonical-json';
import { parseStrictJson } from '../util/strict-json';
import { ImageError } from './errors';

export type PayloadType = 'app' | 'asset';
export type DependencyKind = 'app' | 'sdk' | 'third-party';

export interface PayloadEntry {
  name: string;
  type: PayloadType;
  size: number;
  sha256: string; // lowercase hex
}

export interface Dependency {
  name: string;
  kind: DependencyKind;
  bytes: number;
}

export interface Manifest {
  name: string;
  board: string;
  version: string;
  securityCounter: number;
  buildTime: number; // unix seconds
  expires?: number; // unix seconds
  sdkVersion: string;
  engine: string;
  payloads: PayloadEntry[];
  dependencies: Dependency[];
}

export const APP_PAYLOAD_NAME = 'app.js';
export const MAX_PAYLOADS = 64;
/**
 * Reachable within the manifest cap: the smallest entry, `{"bytes":0,"kind":"app","name":"a"}`
 * plus its comma, is 36 bytes, and 1024 of them take 36 KiB of the 64 KiB manifest.
 */
export const MAX_DEPENDENCIES = 1024;
/** Every string in the manifest is at most this many characters. */
export const MAX_STRING = 256;
const MAX_TIME = 0xffffffffff; // year 36812: any real timestamp fits, nonsense does not
const MAX_U32 = 0xffffffff;

export const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;
export const BOARD_ID = /^[a-z0-9][a-z0-9-]{0,63}$/;
export const SERVICE_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** One segment of a payload name: no `.` or `..` (checked in safePayloadName). */
const PAYLOAD_SEGMENT = /^[A-Za-z0-9._-]+$/;
export const MAX_PAYLOAD_NAME = 128;
export const ENGINE = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** A dependency name is a label (a module path as the bundler names it), never a file path. */
export const DEPENDENCY_NAME = /^[\x21-\x7e][\x20-\x7e]{0,255}$/;
const HEX64 = /^[0-9a-f]{64}$/;

type Check = (v: unknown) => string | null; // null = fine, else what is wrong

function str(re: RegExp, what: string): Check {
  return function (v) {
    return typeof v === 'string' && v.length <= MAX_STRING && re.test(v) ? null : 'must be ' + what;
  };
}

/**
 * A payload name is a relative path someone may write to disk: 1–128 characters, segments
 * separated by single `/`, each segment of [A-Za-z0-9._-] and neither `.` nor `..`. So no
 * leading or trailing `/`, no `//`, no backslash, no control character, no way out of the
 * folder it is written under.
 */
export function safePayloadName(v: unknown): boolean {
  if (typeof v !== 'string' || v.length < 1 || v.length > MAX_PAYLOAD_NAME) return false;
  const segs = v.split('/');
  for (let i = 0; i < segs.length; i++) {
    if (!PAYLOAD_SEGMENT.test(segs[i]) || segs[i] === '.' || segs[i] === '..') return false;
  }
  return true;
}
function uint(max: number): Check {
  return function (v) {
    return isUint(v, max) ? null : 'must be an integer from 0 to ' + max;
  };
}
function oneOf(values: string[]): Check {
  return function (v) {
    return typeof v === 'string' && values.indexOf(v) >= 0 ? null : 'must be one of ' + values.join(', ');
  };
}
function listOf(table: FieldSpec[], max: number): Check {
  return function (v) {
    if (Object.prototype.toString.call(v) !== '[object Array]') return 'must be a list';
    const a = v as unknown[];
    if (a.length > max) return 'has ' + a.length + ' entries, more than ' + max;
    for (let i = 0; i < a.length; i++) {
      const err = checkObject(a[i], table);
      if (err) return 'entry ' + i + ': ' + err;
    }
    return null;
  };
}

interface FieldSpec {
  name: string;
  required: boolean;
  check: Check;
}

const PAYLOAD_FIELDS: FieldSpec[] = [
  { name: 'name', required: true, check: function (v) {
    return safePayloadName(v) ? null : 'must be a relative path of 1-128 characters: segments of [A-Za-z0-9._-] joined by single "/", none "." or ".."';
  } },
  { name: 'type', required: true, check: oneOf(['app', 'asset']) },
  { name: 'size', required: true, check: uint(MAX_U32) },
  { name: 'sha256', required: true, check: str(HEX64, '64 lowercase hex digits') },
];

const DEPENDENCY_FIELDS: FieldSpec[] = [
  { name: 'name', required: true, check: str(DEPENDENCY_NAME, 'printable ASCII of 1-256 characters, not starting with a space') },
  { name: 'kind', required: true, check: oneOf(['app', 'sdk', 'third-party']) },
  { name: 'bytes', required: true, check: uint(MAX_U32) },
];

/** The manifest's one field table: encode (canonical JSON) and decode both follow it. */
export const MANIFEST_FIELDS: FieldSpec[] = [
  { name: 'board', required: true, check: str(BOARD_ID, 'a board id ([a-z0-9-], up to 64)') },
  { name: 'buildTime', required: true, check: uint(MAX_TIME) },
  { name: 'dependencies', required: true, check: listOf(DEPENDENCY_FIELDS, MAX_DEPENDENCIES) },
  { name: 'engine', required: true, check: str(ENGINE, 'an engine id such as duktape-es5') },
  { name: 'expires', required: false, check: uint(MAX_TIME) },
  { name: 'name', required: true, check: str(SERVICE_NAME, 'a service name ([a-z0-9._-], up to 64)') },
  { name: 'payloads', required: true, check: listOf(PAYLOAD_FIELDS, MAX_PAYLOADS) },
  { name: 'sdkVersion', required: true, check: str(SEMVER, 'a semantic version') },
  { name: 'securityCounter', required: true, check: uint(MAX_U32) },
  { name: 'version', required: true, check: str(SEMVER, 'a semantic version such as 1.2.0') },
];

function checkObject(v: unknown, table: FieldSpec[]): string | null {
  if (typeof v !== 'object' || v === null || Object.prototype.toString.call(v) === '[object Array]') return 'must be an object';
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  for (let i = 0; i < keys.length; i++) {
    let known = false;
    for (let j = 0; j < table.length; j++) if (table[j].name === keys[i]) known = true;
    if (!known) return 'unknown field "' + keys[i] + '"';
  }
  for (let j = 0; j < table.length; j++) {
    const f = table[j];
    if (!Object.prototype.hasOwnProperty.call(o, f.name)) {
      if (f.required) return 'missing field "' + f.name + '"';
      continue;
    }
    const err = f.check(o[f.name]);
    if (err) return 'field "' + f.name + '" ' + err;
  }
  return null;
}

/** Cross-field rules the table cannot express. */
function checkRules(m: Manifest): string | null {
  if (m.payloads.length === 0) return 'no payloads';
  if (m.payloads[0].name !== APP_PAYLOAD_NAME || m.payloads[0].type !== 'app') {
    return 'the first payload must be the app bundle "' + APP_PAYLOAD_NAME + '" of type app';
  }
  const seen: Record<string, boolean> = {};
  for (let i = 0; i < m.payloads.length; i++) {
    const p = m.payloads[i];
    if (seen['$' + p.name]) return 'payload "' + p.name + '" listed twice';
    seen['$' + p.name] = true;
    if (i > 0 && p.type === 'app') return 'only one payload may be of type app';
  }
  if (m.expires !== undefined && m.expires <= m.buildTime) return 'expires is not after buildTime';
  return null;
}

export function validateManifest(m: unknown): Manifest {
  const err = checkObject(m, MANIFEST_FIELDS) || checkRules(m as Manifest);
  if (err) throw new ImageError('E_MANIFEST', 'manifest ' + err);
  return m as Manifest;
}

export function encodeManifest(m: Manifest): Uint8Array {
  validateManifest(m);
  return utf8Encode(canonicalString(m));
}

export function decodeManifest(bytes: Uint8Array): Manifest {
  const text = asciiDecode(bytes);
  if (text === null) throw new ImageError('E_MANIFEST', 'manifest contains bytes outside printable ASCII');
  let parsed: unknown;
  try {
    parsed = parseStrictJson(text);
  } catch (e) {
    throw new ImageError('E_MANIFEST', 'manifest is not strict JSON: ' + (e as Error).message, e);
  }
  const m = validateManifest(parsed);
  if (canonicalString(m) !== text) throw new ImageError('E_MANIFEST', 'manifest is not in canonical form');
  return m;
}
