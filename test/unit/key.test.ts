import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseIdempotencyKey } from '../../src/index.js';

const printable = fc.string({
  unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
  minLength: 1,
  maxLength: 255,
});

describe('Idempotency-Key parsing (T5)', () => {
  it('a bare value and its sf-string form are the same key', () => {
    fc.assert(
      fc.property(
        printable.filter((k) => !/["\\,;]/.test(k)),
        (key) => {
          const bare = parseIdempotencyKey([key]);
          const quoted = parseIdempotencyKey([`"${key}"`]);
          assert.deepEqual(bare, { ok: true, key });
          assert.deepEqual(quoted, { ok: true, key });
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('any printable key survives sf-string escaping and unescaping', () => {
    fc.assert(
      fc.property(printable, (key) => {
        const escaped = `"${key.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
        assert.deepEqual(parseIdempotencyKey([escaped]), { ok: true, key });
      }),
      { numRuns: 2_000 },
    );
  });

  it('accepted keys are always 1-255 printable ASCII characters, whatever the input', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: 'binary', maxLength: 300 }), { minLength: 0, maxLength: 3 }),
        (values) => {
          const result = parseIdempotencyKey(values);
          if (result.ok) assert.match(result.key, /^[\x21-\x7e]{1,255}$/);
        },
      ),
      { numRuns: 5_000 },
    );
  });

  it('refuses the malformed cases of T5 with a reason', () => {
    const bad = [
      [''],
      ['k'.repeat(256)],
      ['a b'],
      ['a\r\nb'],
      ['a\0'],
      ['kéy'],
      ['a', 'b'],
      ['a, b'],
      ['"k";a=1'],
      ['"abc'],
      ['"a\\x"'],
      [],
    ];
    for (const values of bad) {
      const result = parseIdempotencyKey(values);
      assert.equal(result.ok, false, JSON.stringify(values));
      if (!result.ok) assert.ok(result.reason.length > 0);
    }
  });

  it('minKeyLength raises the floor', () => {
    assert.equal(parseIdempotencyKey(['short'], 20).ok, false);
    assert.equal(parseIdempotencyKey(['a-key-that-is-long-enough'], 20).ok, true);
  });
});
