// Header records whose values are lists, as Node's `req.headersDistinct` (what the gateway reads)
// gives them: a one-line list is that line, and two lines are both kept (joined), never cut to
// the first, so a request with two Authorization lines is no caller of either line alone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { headerValue } from '../../src/core/request.js';
import { createIdempotency, memoryStore } from '../../src/index.js';
import { request, response } from '../support/engine-helpers.js';

const quiet = { onWarning() {} };

describe('header records with list values', () => {
  it('a one-line list reads as its line; two lines read joined; an empty list as absent', () => {
    assert.equal(headerValue({ authorization: ['Bearer a'] }, 'authorization'), 'Bearer a');
    assert.equal(
      headerValue({ authorization: ['Bearer a', 'Bearer b'] }, 'authorization'),
      'Bearer a, Bearer b',
    );
    assert.equal(headerValue({ authorization: [] }, 'authorization'), undefined);
    assert.equal(
      headerValue({ Authorization: ['Bearer a'], authorization: ['Bearer b'] }, 'authorization'),
      'Bearer a, Bearer b',
    );
  });

  it('two Authorization lines are a caller of their own, not the first line', async () => {
    const idem = createIdempotency({ store: memoryStore(quiet), sweepIntervalMs: 0, ...quiet });
    const as = (authorization: string[]) =>
      request({
        headers: { 'content-type': ['application/json'], 'idempotency-key': ['k1'], authorization } as never,
      });

    const first = await idem.begin(as(['Bearer a']));
    assert.equal(first.kind, 'execute');
    await first.commit(response());
    assert.equal((await idem.begin(as(['Bearer a']))).kind, 'replay', 'one line: the same caller');
    assert.equal(
      (await idem.begin(as(['Bearer a', 'Bearer b']))).kind,
      'execute',
      'two lines never reach the record of the first line',
    );
  });

  it('the key: a one-line list is the key; two lines, or a list beside a line, are 400 invalid-key', async () => {
    const idem = createIdempotency({ store: memoryStore(quiet), sweepIntervalMs: 0, ...quiet });
    const withKey = (key: Record<string, string | string[]>) =>
      request({
        key: null,
        headers: { 'content-type': 'application/json', authorization: 'Bearer u', ...key },
      });
    const detail = (d: Awaited<ReturnType<typeof idem.begin>>) =>
      d.kind === 'reject'
        ? (JSON.parse(Buffer.from(d.response.body).toString()) as { detail: string }).detail
        : d.kind;

    const first = await idem.begin(withKey({ 'idempotency-key': ['k1'] }));
    assert.equal(first.kind, 'execute');
    await first.commit(response());
    assert.equal(
      (await idem.begin(withKey({ 'idempotency-key': 'k1' }))).kind,
      'replay',
      'the same key as a string',
    );
    for (const key of [
      { 'idempotency-key': ['k1', 'k1'] },
      { 'Idempotency-Key': ['k1'], 'idempotency-key': 'k1' },
      { 'Idempotency-Key': [], 'idempotency-key': ['k1', 'k2'] },
    ]) {
      assert.match(detail(await idem.begin(withKey(key))), /more than one Idempotency-Key field line/);
    }
    // An empty list is no line: the other field line is the key.
    assert.equal(
      (await idem.begin(withKey({ 'Idempotency-Key': [], 'idempotency-key': 'k1' }))).kind,
      'replay',
    );
    const none = await idem.begin(withKey({ 'idempotency-key': [] }));
    assert.equal(none.kind === 'reject' && none.code, 'missing-key', 'no line: no key');
    await idem.close();
  });
});
