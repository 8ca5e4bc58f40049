/**
 * Canonical JSON as used by TUF (OLPC rules, as implemented by tuf-js/securesystemslib):
 * objects with keys sorted by code unit, no insignificant whitespace, strings escaping only
 * `"` and `\`, integers only (no floats, no exponent), UTF-8 output.
 *
 * Signet signs canonical bytes and, when it reads signed JSON, re-encodes what it parsed and
 * requires the result to be identical to what was signed where byte-exactness matters (the
 * image manifest), so duplicate keys, floats and whitespace are rejected rather than
 * interpreted.
 */
import { utf8Encode } from './bytes';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

export class CanonicalJsonError extends Error {
  constructor(message: string) {
    super(message);
    if (Object.setPrototypeOf) Object.setPrototypeOf(this, CanonicalJsonError.prototype);
    this.name = 'CanonicalJsonError';
  }
}

export function canonicalString(v: unknown): string {
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'number') {
    if (Math.floor(v) !== v || v > 9007199254740991 || v < -9007199254740991) {
      throw new CanonicalJsonError('canonical JSON allows only safe integers, got ' + v);
    }
    return String(v);
  }
  if (typeof v === 'string') {
    // The replacements only when needed: regex replace is slow on the device engine.
    if (v.indexOf('\\') < 0 && v.indexOf('"') < 0) return '"' + v + '"';
    return '"' + v.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
  }
  if (Object.prototype.toString.call(v) === '[object Array]') {
    const a = v as unknown[];
    const parts: string[] = [];
    for (let i = 0; i < a.length; i++) parts.push(canonicalString(a[i]));
    return '[' + parts.join(',') + ']';
  }
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).sort();
    const parts: string[] = [];
    for (let i = 0; i < keys.length; i++) {
      if (o[keys[i]] === undefined) continue;
      parts.push(canonicalString(keys[i]) + ':' + canonicalString(o[keys[i]]));
    }
    return '{' + parts.join(',') + '}';
  }
  throw new CanonicalJsonError('canonical JSON cannot encode a ' + typeof v);
}

export function canonicalBytes(v: unknown): Uint8Array {
  return utf8Encode(canonicalString(v));
}
