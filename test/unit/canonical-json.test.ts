import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { canonicalJson, decodeUtf8, readJsonField } from '../../src/core/canonical-json.js';

/** Serialises a value with object keys in a random order and random whitespace. */
function shuffledJson(value: unknown, rnd: () => number): string {
  const ws = () => [' ', '', '\n', '\t'][Math.floor(rnd() * 4)];
  if (Array.isArray(value)) return `[${value.map((v) => ws() + shuffledJson(v, rnd)).join(',')}]`;
  if (value && typeof value === 'object') {
    const keys = Object.keys(value).sort(() => rnd() - 0.5);
    return `{${keys.map((k) => `${ws()}${JSON.stringify(k)}${ws()}:${shuffledJson((value as Record<string, unknown>)[k], rnd)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const json = fc.jsonValue({ maxDepth: 4 });

describe('canonical JSON for fingerprints', () => {
  it('key order and whitespace never change the canonical form', () => {
    fc.assert(
      fc.property(json, fc.integer(), (value, seed) => {
        let s = seed;
        const rnd = () => {
          s = (s * 1103515245 + 12345) & 0x7fffffff;
          return s / 0x7fffffff;
        };
        assert.equal(canonicalJson(shuffledJson(value, rnd)), canonicalJson(JSON.stringify(value)));
      }),
      { numRuns: 2_000 },
    );
  });

  it('any change of a value changes the canonical form', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), json, { minKeys: 1 }), fc.jsonValue(), (object, replacement) => {
        const key = Object.keys(object)[0] as string;
        fc.pre(JSON.stringify(object[key]) !== JSON.stringify(replacement));
        const changed = { ...object, [key]: replacement };
        assert.notEqual(canonicalJson(JSON.stringify(changed)), canonicalJson(JSON.stringify(object)));
      }),
      { numRuns: 2_000 },
    );
  });

  it('large integers keep their exact text, so neighbours that share a double differ', () => {
    assert.notEqual(canonicalJson('{"n":12345678901234567890}'), canonicalJson('{"n":12345678901234567891}'));
    assert.equal(canonicalJson('{"n": 12345678901234567890}'), '{"n":12345678901234567890}');
  });

  it('string escapes are normalised: "\\u0041" and "A" are the same value', () => {
    assert.equal(canonicalJson('{"a":"\\u0041"}'), canonicalJson('{"a":"A"}'));
  });

  it('invalid JSON, duplicate keys and absurd nesting fall back to raw bytes (undefined)', () => {
    assert.equal(canonicalJson('{"a":1,}'), undefined);
    assert.equal(canonicalJson('{"a":1,"a":2}'), undefined);
    assert.equal(canonicalJson(`${'['.repeat(1_000)}${']'.repeat(1_000)}`), undefined);
    assert.equal(canonicalJson('NaN'), undefined);
  });

  it('excludeFields drops top-level and dotted fields', () => {
    assert.equal(canonicalJson('{"a":1,"ts":2,"m":{"x":1,"y":2}}', ['ts', 'm.y']), '{"a":1,"m":{"x":1}}');
  });
});

describe('strict UTF-8 and the body-field reader', () => {
  it('decodeUtf8 refuses invalid bytes instead of turning them into U+FFFD, and keeps a BOM', () => {
    assert.equal(decodeUtf8(Buffer.from('{"a":"é"}')), '{"a":"é"}');
    assert.equal(decodeUtf8(Buffer.from([0x7b, 0xff, 0x7d])), undefined);
    assert.equal(decodeUtf8(Buffer.from([0xed, 0xa0, 0x80])), undefined, 'an encoded lone surrogate');
    assert.equal(decodeUtf8(Buffer.from([0xef, 0xbb, 0xbf, 0x31])), '\ufeff1');
    assert.equal(
      decodeUtf8(Buffer.from([0xff])),
      undefined,
      'the shared decoder is not left in a broken state',
    );
    assert.equal(decodeUtf8(Buffer.from('ok')), 'ok');
  });

  it('readJsonField tells an absent field from one that is present but not a string', () => {
    assert.deepEqual(readJsonField('{"id":"k\u0031"}', 'id'), { present: true, value: 'k1' });
    assert.deepEqual(readJsonField('{"id":7}', 'id'), { present: true, value: undefined });
    assert.deepEqual(readJsonField('{"id":null}', 'id'), { present: true, value: undefined });
    assert.deepEqual(readJsonField('{"other":"k"}', 'id'), { present: false });
    assert.deepEqual(readJsonField('["id","k"]', 'id'), { present: false });
    assert.deepEqual(readJsonField('not json', 'id'), { present: false });
  });
});
