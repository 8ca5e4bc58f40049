/**
 * The one JSON parser for JSON that comes from outside (root metadata, TUF metadata, the image
 * manifest), so that every Signet verifier — Node, the OTA agent, the boot stage on Duktape —
 * reads a document the same way, and the same way as any other strict parser would
 * (docs/image-format.md §"JSON"):
 *
 * - RFC 8259 syntax, nothing more (no comments, no trailing commas, no NaN);
 * - an object that names a key twice is refused (JSON.parse keeps the last, other parsers the
 *   first: two readers could see two different documents behind one signature);
 * - numbers must be integers without fraction or exponent whose magnitude is at most
 *   2^53 − 1 (every reader gets the exact value; canonical JSON cannot encode anything else);
 * - nesting deeper than MAX_DEPTH is refused (bounded stack on small engines).
 *
 * Errors are StrictJsonError with the byte offset; callers turn them into their area's code.
 * ES5-safe: plain loops and charCodeAt, no sticky regexes, no Map.
 */
import { utf8Decode } from './bytes';

export const MAX_DEPTH = 32;
const MAX_SAFE = 9007199254740991;

export class StrictJsonError extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message + ' at offset ' + offset);
    if (Object.setPrototypeOf) Object.setPrototypeOf(this, StrictJsonError.prototype);
    this.name = 'StrictJsonError';
    this.message = message + ' at offset ' + offset;
    this.offset = offset;
  }
}

export function parseStrictJson(text: string): unknown {
  let i = 0;
  const n = text.length;

  function fail(what: string): never {
    throw new StrictJsonError(what, i);
  }
  function ws(): void {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  }
  function literal(word: string, v: unknown): unknown {
    if (text.substr(i, word.length) !== word) fail('unexpected character');
    i += word.length;
    return v;
  }
  function str(): string {
    i++; // opening quote
    let out = '';
    let start = i;
    while (true) {
      if (i >= n) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.substring(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail('control character in a string');
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.substring(start, i);
      const e = text.charAt(i + 1);
      if (e === '"' || e === '\\' || e === '/') out += e;
      else if (e === 'b') out += '\b';
      else if (e === 'f') out += '\f';
      else if (e === 'n') out += '\n';
      else if (e === 'r') out += '\r';
      else if (e === 't') out += '\t';
      else if (e === 'u') {
        const h = text.substr(i + 2, 4);
        if (!/^[0-9a-fA-F]{4}$/.test(h)) fail('bad \\u escape');
        out += String.fromCharCode(parseInt(h, 16));
        i += 4;
      } else fail('bad escape');
      i += 2;
      start = i;
    }
  }
  function num(): number {
    const start = i;
    if (text.charCodeAt(i) === 0x2d) i++;
    const digits = i;
    while (i < n && text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39) i++;
    if (i === digits) fail('bad number');
    if (i - digits > 1 && text.charCodeAt(digits) === 0x30) fail('number with a leading zero');
    const c = text.charAt(i);
    if (c === '.' || c === 'e' || c === 'E') fail('number with a fraction or exponent (only integers are allowed)');
    if (i - digits > 16) fail('integer beyond 2^53 - 1');
    const v = +text.substring(start, i);
    if (v > MAX_SAFE || v < -MAX_SAFE) fail('integer beyond 2^53 - 1');
    return v;
  }
  function value(depth: number): unknown {
    ws();
    if (i >= n) fail('unexpected end of JSON');
    const c = text.charAt(i);
    if (c === '{') {
      if (depth >= MAX_DEPTH) fail('nesting deeper than ' + MAX_DEPTH);
      i++;
      const o: Record<string, unknown> = {};
      ws();
      if (text.charAt(i) === '}') {
        i++;
        return o;
      }
      while (true) {
        ws();
        if (text.charAt(i) !== '"') fail('expected a key');
        const keyAt = i;
        const k = str();
        if (Object.prototype.hasOwnProperty.call(o, k)) {
          i = keyAt;
          fail('duplicate key ' + JSON.stringify(k));
        }
        ws();
        if (text.charAt(i) !== ':') fail('expected ":"');
        i++;
        const v = value(depth + 1);
        // defineProperty: a key named "__proto__" stays an ordinary key.
        Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
        ws();
        const d = text.charAt(i);
        i++;
        if (d === '}') return o;
        if (d !== ',') {
          i--;
          fail('expected "," or "}"');
        }
      }
    }
    if (c === '[') {
      if (depth >= MAX_DEPTH) fail('nesting deeper than ' + MAX_DEPTH);
      i++;
      const a: unknown[] = [];
      ws();
      if (text.charAt(i) === ']') {
        i++;
        return a;
      }
      while (true) {
        a.push(value(depth + 1));
        ws();
        const d = text.charAt(i);
        i++;
        if (d === ']') return a;
        if (d !== ',') {
          i--;
          fail('expected "," or "]"');
        }
      }
    }
    if (c === '"') return str();
    if (c === 't') return literal('true', true);
    if (c === 'f') return literal('false', false);
    if (c === 'n') return literal('null', null);
    if (c === '-' || (c >= '0' && c <= '9')) return num();
    return fail('unexpected character');
  }

  const v = value(0);
  ws();
  if (i !== n) fail('unexpected data after the JSON value');
  return v;
}

/**
 * UTF-8 bytes parsed strictly, or `undefined` when they are absent, not UTF-8 or not strict JSON:
 * for answers and saved state that are advice, read one way on every engine (a duplicate key, a
 * lone surrogate or a too-deep value is no value).
 */
export function parseStrictJsonBytes(bytes: Uint8Array | null | undefined): unknown {
  if (!bytes) return undefined;
  const text = utf8Decode(bytes);
  if (text === null) return undefined;
  try {
    return parseStrictJson(text);
  } catch (_e) {
    return undefined;
  }
}
