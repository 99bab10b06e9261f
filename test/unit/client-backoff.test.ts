import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createRetryBudget, fullJitterDelay, parseRetryAfter } from '../../src/client/index.js';

describe('client backoff: capped exponential, full jitter', () => {
  it('retry n waits a random point in [0, min(cap, base · 2^(n-1))]', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 1, max: 1_000 }),
        fc.integer({ min: 1, max: 60_000 }),
        fc.double({ min: 0, max: 0.999_999, noNaN: true }),
        (retry, base, cap, random) => {
          const delay = fullJitterDelay(retry, base, cap, () => random);

          assert.ok(delay >= 0 && delay <= Math.min(cap, base * 2 ** (retry - 1)), String(delay));
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('the window doubles per retry until the cap', () => {
    const top = (retry: number) => fullJitterDelay(retry, 100, 5_000, () => 0.999_999);

    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 20].map(top), [99, 199, 399, 799, 1_599, 3_199, 4_999, 4_999]);
  });
});

describe('client Retry-After parsing (RFC 9110 §10.2.3)', () => {
  const now = Date.parse('2026-03-01T12:00:00Z');

  it('delay-seconds become milliseconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), (seconds) => {
        assert.equal(parseRetryAfter(String(seconds), now), seconds * 1_000);
        assert.equal(parseRetryAfter(` ${seconds} `, now), seconds * 1_000);
      }),
    );
  });

  it('an HTTP date becomes the time left until it, in any of the three date forms; a past date is now', () => {
    assert.equal(parseRetryAfter('Sun, 01 Mar 2026 12:00:05 GMT', now), 5_000);
    assert.equal(parseRetryAfter('Sunday, 01-Mar-26 12:01:00 GMT', now), 60_000);
    assert.equal(parseRetryAfter('Sun Mar  1 12:00:30 2026', now), 30_000); // asctime: GMT, not local time
    assert.equal(parseRetryAfter('Sun, 01 Mar 2026 11:00:00 GMT', now), 0);
  });

  it('any date in the future is read back to the millisecond-rounded second', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 86_400 * 365 }), (seconds) => {
        const header = new Date(now + seconds * 1_000).toUTCString();

        assert.equal(parseRetryAfter(header, now), seconds * 1_000);
      }),
    );
  });

  it('absent, empty, negative, fractional or unreadable values are undefined (the backoff decides)', () => {
    for (const value of [
      undefined,
      null,
      '',
      '  ',
      '-1',
      '1.5',
      '+3',
      'soon',
      'tomorrow at noon',
      '99999999999999999999',
    ]) {
      assert.equal(parseRetryAfter(value, now), undefined, String(value));
    }
  });
});

describe('client retry budget (token bucket, AWS-SDK style)', () => {
  it('500 tokens pay 100 retries, 50 after timeouts; an empty bucket refuses without going negative', () => {
    const plain = createRetryBudget();
    const afterTimeouts = createRetryBudget();

    const retries = Array.from({ length: 150 }, () => plain.take(false)).filter(Boolean).length;
    const timeoutRetries = Array.from({ length: 150 }, () => afterTimeouts.take(true)).filter(Boolean).length;

    assert.equal(retries, 100);
    assert.equal(timeoutRetries, 50);
    assert.equal(plain.available, 0);
  });

  it('successes refund one token each, up to the capacity', () => {
    const budget = createRetryBudget({ capacity: 12, retryCost: 5 });
    budget.take(false);
    budget.take(false);

    for (let i = 0; i < 4; i++) budget.refund();
    const afterFour = budget.available;
    for (let i = 0; i < 100; i++) budget.refund();

    assert.equal(afterFour, 6);
    assert.equal(budget.available, 12);
  });
});
