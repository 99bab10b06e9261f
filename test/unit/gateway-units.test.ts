import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/gateway/config-error.js';
import { formatDuration, parseDuration, parseSize } from '../../src/gateway/units.js';

describe('human durations (--lease 30s)', () => {
  it('turns every unit into milliseconds', () => {
    const cases: [string, number][] = [
      ['500ms', 500],
      ['30s', 30_000],
      ['2m', 120_000],
      ['24h', 86_400_000],
      ['1d', 86_400_000],
      ['1.5s', 1_500],
      [' 10S ', 10_000],
      ['0', 0],
      ['0s', 0],
    ];
    for (const [text, ms] of cases) assert.equal(parseDuration(text, '--lease'), ms, text);
  });

  it('refuses a bare number, naming the source and suggesting units', () => {
    assert.throws(
      () => parseDuration('30', '--lease'),
      (error: Error) =>
        error instanceof ConfigError &&
        /^--lease: "30" is not a duration \(add a unit: 30s or 30ms\?\)/.test(error.message),
    );
  });

  it('refuses unknown units, negatives, fractions of a millisecond and garbage', () => {
    for (const text of ['30 sec', '5w', '-1s', '0.5ms', 'soon', '', '1e3ms', '9999999999999999999d']) {
      assert.throws(
        () => parseDuration(text, 'IDEMKIT_LEASE'),
        { name: 'ConfigError', message: /^IDEMKIT_LEASE: / },
        text,
      );
    }
  });
});

describe('human sizes (--max-body 1mb)', () => {
  it('uses binary multiples, so 1mb is the default maxBodyBytes', () => {
    const cases: [string, number][] = [
      ['1mb', 1_048_576],
      ['512kb', 524_288],
      ['512KiB', 524_288],
      ['2048', 2_048],
      ['100b', 100],
      ['1gb', 1_073_741_824],
      ['1.5mb', 1_572_864],
      ['0', 0],
    ];
    for (const [text, bytes] of cases) assert.equal(parseSize(text, '--max-body'), bytes, text);
  });

  it('refuses unknown units and fractional bytes with a message that shows valid forms', () => {
    for (const text of ['1 megabyte', '1tb', '-1kb', '0.5b', 'big']) {
      assert.throws(
        () => parseSize(text, '--max-body'),
        { name: 'ConfigError', message: /^--max-body: .*(2048, 512kb, 1mb|whole number)/ },
        text,
      );
    }
  });
});

describe('formatDuration', () => {
  it('prints the largest fitting unit', () => {
    assert.deepEqual([999, 1_500, 90_000, 5_400_000].map(formatDuration), ['999ms', '1.5s', '1.5m', '1.5h']);
  });
});
