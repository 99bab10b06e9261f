import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import type { IdempotencyEvent } from '../core/events.js';
import { parseIdempotencyKey } from '../core/key.js';
import { type ContractHarness, call, DEFAULT_AUTH, post } from './http-harness.js';
import { type RawResponse, rawRequest } from './raw-http.js';

function rawPay(url: string, keyLines: string[], op: string): Promise<RawResponse> {
  return rawRequest(url, {
    method: 'POST',
    path: '/pay',
    headers: [
      ['content-type', 'application/json'],
      ['authorization', DEFAULT_AUTH],
      ['x-op', op],
      ...keyLines.map((k): [string, string] => ['idempotency-key', k]),
    ],
    body: '{"fuzz":true}',
  });
}

/** T5 key syntax, T6 safe methods, T46 key and header fuzz. */
export function defineHttpContractSyntax(harness: ContractHarness): void {
  const { it } = harness.options;

  harness.test('T5 bare and quoted keys are accepted, and abc and "abc" are the same key', {}, async (s) => {
    const id = randomUUID();
    const bare = await post(s.url, '/pay', { key: id, body: '{}', op: 'T5' });
    const quoted = await post(s.url, '/pay', { key: `"${id}"`, body: '{}', op: 'T5' });
    assert.equal(bare.status, 201);
    assert.equal(quoted.headers.get('idempotent-replayed'), 'true');
    const escaped = await post(s.url, '/pay', { key: `"a\\"b-${id}"`, body: '{}', op: 'T5-escaped' });
    assert.equal(escaped.status, 201);
    assert.equal(s.app.executions('T5'), 1);
  });

  harness.test('T5 malformed keys get 400 invalid-key with zero store calls', {}, async (s) => {
    const cases: [string, string[]][] = [
      ['empty', ['']],
      ['256 characters', ['k'.repeat(256)]],
      ['a space', ['a b']],
      ['CR', ['ab\rc']],
      ['NUL', ['ab\0c']],
      ['LF', ['ab\nc']],
      ['non-ASCII UTF-8', [Buffer.from('kéy', 'utf8').toString('latin1')]],
      ['two field lines', ['a', 'b']],
      ['a comma list', ['a, b']],
      ['sf parameters', ['"k";a=1']],
      ['an unterminated quote', ['"abc']],
    ];
    for (const [name, lines] of cases) {
      const response = await rawPay(s.url, lines, 'T5-bad');
      assert.equal(response.status, 400, `${name} must be refused`);
    }
    assert.equal(s.app.executions('T5-bad'), 0);
    assert.equal(s.storeCalls(), 0);
    const problem = await post(s.url, '/pay', { key: 'a b', body: '{}', op: 'T5-bad' });
    assert.equal(problem.problem?.type, 'urn:idemkit:problem:invalid-key');
  });

  harness.test('T6 GET, HEAD and OPTIONS with a key are never recorded or replayed', {}, async (s) => {
    const key = randomUUID();
    for (const method of ['GET', 'GET', 'HEAD', 'OPTIONS']) {
      const reply = await call(s.url, method, '/pay', { key, op: 'T6' });
      assert.equal(reply.headers.get('idempotent-replayed'), null);
    }
    assert.equal(s.app.executions('T6'), 4);
    assert.equal(s.storeCalls(), 0);
  });

  it('T46 fuzzed and crafted keys get 400 or a valid accept; no crash, no CR/LF echoed, hashed keys only', async () => {
    const events: IdempotencyEvent[] = [];
    const s = await harness.serve({ onEvent: (event) => events.push(event) });
    try {
      const crafted = [
        'abc\r\nset-cookie: x=1',
        '\0',
        'аbc', // Cyrillic а
        'k'.repeat(10_240),
        '"unterminated',
        '\t"quoted-with-ows"\t',
        '*',
      ];
      const bytesOf = (s: string) => Buffer.from(s, 'utf8').toString('latin1');
      const check = async (value: string) => {
        const wire = bytesOf(value);
        const response = await rawPay(s.url, [wire], 'T46');
        for (const [name, v] of response.headers) assert.ok(!/[\r\n]/.test(name + v));
        if (/[\r\n]/.test(wire)) {
          assert.ok(
            [201, 400].includes(response.status),
            `status ${response.status} for ${JSON.stringify(value)}`,
          );
          return;
        }
        const expected = parseIdempotencyKey([wire]).ok ? 201 : 400;
        assert.equal(response.status, expected, `key ${JSON.stringify(value)}`);
      };
      for (const value of crafted) await check(value);
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.string({ unit: 'binary', maxLength: 300 }),
            fc.string({ minLength: 1, maxLength: 260 }),
          ),
          check,
        ),
        { numRuns: harness.options.fuzzRuns ?? 10_000 },
      );
      const alive = await post(s.url, '/pay', { key: randomUUID(), body: '{}', op: 'T46-alive' });
      assert.equal(alive.status, 201);
      for (const event of events) {
        if ('key' in event && event.key !== undefined) assert.match(event.key, /^[0-9a-f]{64}$/);
      }
    } finally {
      await s.close();
    }
  });
}
