/**
 * sdk/util/strict-json.ts, the one parser for JSON from outside (root, TUF metadata,
 * manifest): it reads what JSON.parse reads wherever JSON.parse cannot be fooled, and refuses
 * the rest (duplicate keys, non-integers, integers beyond 2^53 - 1, deep nesting).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_DEPTH, parseStrictJson, StrictJsonError } from '../sdk/util/strict-json';

const safeInt = fc.integer({ min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER });
const json = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true },
    fc.constant(null), fc.boolean(), safeInt, fc.string({ unit: 'binary' }),
    fc.array(tie('value'), { maxLength: 4 }), fc.dictionary(fc.string({ unit: 'binary' }), tie('value'), { maxKeys: 4 })),
})).value;

describe('strict JSON', () => {
  it('agrees with JSON.parse on JSON without floats or duplicate keys (any spacing)', () => {
    fc.assert(fc.property(json, fc.boolean(), (v, pretty) => {
      const text = JSON.stringify(v, null, pretty ? 2 : undefined);
      expect(parseStrictJson(text)).toEqual(JSON.parse(text));
    }), { numRuns: 500 });
  });

  it('keeps "__proto__" an ordinary key', () => {
    const v = parseStrictJson('{"__proto__":{"x":1}}') as Record<string, unknown>;
    expect(Object.keys(v)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it('reads escapes as JSON does', () => {
    const t = '"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00"';
    expect(parseStrictJson(t)).toBe(JSON.parse(t));
  });

  for (const bad of [
    '{"a":1,"a":1}', '{"a":{"b":1,"b":2}}', '[{"k":1,"k":1}]',
    '1.0', '1.5', '1e3', '1E3', '-0.0', '9007199254740992', '-9007199254740992', '12345678901234567890',
    '01', '-', '+1', 'NaN', 'Infinity', '{"a":1,}', '[1,]', "{'a':1}", '{"a":1} x', '', ' ', '"\u0001"', '"\\x"', '"\\u12"',
    '[' .repeat(MAX_DEPTH + 1) + ']'.repeat(MAX_DEPTH + 1), 'tru', 'nul',
  ]) {
    it(`refuses ${JSON.stringify(bad.length > 40 ? bad.slice(0, 40) + '…' : bad)}`, () => {
      expect(() => parseStrictJson(bad)).toThrow(StrictJsonError);
    });
  }

  it('accepts the extremes it allows', () => {
    expect(parseStrictJson('9007199254740991')).toBe(Number.MAX_SAFE_INTEGER);
    expect(parseStrictJson('-9007199254740991')).toBe(-Number.MAX_SAFE_INTEGER);
    expect(parseStrictJson('['.repeat(MAX_DEPTH) + ']'.repeat(MAX_DEPTH))).toBeTruthy();
  });
});
