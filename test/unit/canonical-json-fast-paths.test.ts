import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { canonicalJson, isCanonicalJsonBytes } from '../../src/core/canonical-json.js';

/*
 * The fingerprint of a JSON body is made from its canonical form, and stored records keep it:
 * the fast paths (one-pass canonicaliser, already-canonical bytes hashed as they are) must give
 * exactly what the tree-based path gives, and refuse exactly what it refuses. Leaving out a
 * field that is not there takes the tree-based path without changing anything, so it is the
 * reference here.
 */
const ABSENT = ['\u0000not-a-field'];
const reference = (text: string) => canonicalJson(text, ABSENT);

/** JSON texts, valid and broken: mutated, sorted, compact, spaced, escaped, nested. */
const texts = fc.oneof(
  fc.jsonValue({ maxDepth: 5 }).map((v) => JSON.stringify(v)),
  fc.jsonValue({ maxDepth: 5 }).map((v) => JSON.stringify(v, null, 1)),
  fc.jsonValue({ maxDepth: 5 }).map((v) => sortedJson(v)),
  fc
    .tuple(
      fc.jsonValue({ maxDepth: 3 }).map(sortedJson),
      fc.nat(),
      fc.constantFrom('', ' ', '"', ',', '\\', '}', '0', 'é'),
    )
    .map(([t, at, ch]) => t.slice(0, at % (t.length + 1)) + ch + t.slice((at % (t.length + 1)) + 1)),
  fc.constantFrom(
    '{"a":1,"a":2}',
    '{"b":1,"a":2}',
    '{"a":"\\u0041","b":"\\/"}',
    '{"é":1,"z":2}',
    '{"\uffff":1,"\ud83d\ude00":2}',
    '[01]',
    '[1.]',
    '[1e]',
    '[-]',
    '[1E+5,-0.5e-3,0]',
    '"\ud800"',
    'truex',
    '\ufeff{}',
    `${'['.repeat(129)}${']'.repeat(129)}`,
    `${'['.repeat(130)}${']'.repeat(130)}`,
    // Unsorted objects either side of the insertion-sort limit (16 keys), with and without a
    // duplicate key that only sorting brings next to its twin.
    reversedObject(5),
    reversedObject(16),
    reversedObject(17),
    reversedObject(40),
    reversedObject(5).replace('"k0":', '"k4":'),
    reversedObject(40).replace('"k0":', '"k39":'),
  ),
);

/** `{"kN-1":N-1,…,"k0":0}`: every key out of order. */
function reversedObject(n: number): string {
  return `{${Array.from({ length: n }, (_, i) => `"k${n - 1 - i}":${n - 1 - i}`).join(',')}}`;
}

function sortedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    return `{${Object.keys(record)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${sortedJson(record[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

describe('canonical JSON fast paths agree with the tree-based canonical form', () => {
  it('the one-pass canonicaliser gives the same text, or refuses the same inputs', () => {
    fc.assert(
      fc.property(texts, (text) => {
        assert.equal(canonicalJson(text), reference(text));
      }),
      { numRuns: 5_000 },
    );
  });

  it('unsorted objects of any size come out in key order; a duplicate key anywhere is refused', () => {
    for (const n of [2, 5, 16, 17, 40]) {
      const expected = `{${Array.from({ length: n }, (_, i) => `"k${i}":${i}`)
        .sort()
        .join(',')}}`;
      assert.equal(canonicalJson(reversedObject(n)), expected);
      assert.equal(canonicalJson(reversedObject(n).replace('"k0":', `"k${n - 1}":`)), undefined);
    }
  });

  it('bytes recognised as already canonical are exactly their canonical form', () => {
    fc.assert(
      fc.property(texts, (text) => {
        const bytes = Buffer.from(text);
        // (A lone surrogate does not survive UTF-8 encoding: compare what the bytes say.)
        const decoded = bytes.toString('utf8');
        if (isUtf8(bytes) && isCanonicalJsonBytes(bytes)) assert.equal(reference(decoded), decoded);
      }),
      { numRuns: 5_000 },
    );
  });

  it('compact JSON with sorted ASCII keys is recognised (the fast path is taken)', () => {
    for (const text of ['{"amount":1000,"currency":"eur"}', '[1,{"a":[true,null]},"x"]', '-1.5e+3', '"é"']) {
      assert.equal(isCanonicalJsonBytes(Buffer.from(text)), true, text);
    }
    for (const text of ['{"b":1,"a":2}', '{"a":1,"a":1}', '{ "a":1}', '{"a":"\\n"}', '[1,]', '{"é":1}']) {
      assert.equal(isCanonicalJsonBytes(Buffer.from(text)), false, text);
    }
  });
});
