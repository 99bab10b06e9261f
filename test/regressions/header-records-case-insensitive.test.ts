// Audit: begin() read plain header records case-sensitively, so `{ 'Idempotency-Key': 'k1' }`
// (as API gateways and tests write it) got 400 missing-key and a capitalised Authorization was
// ignored.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { headerValue, headerValues } from '../../src/core/request.js';
import { createIdempotency, memoryStore } from '../../src/index.js';
import { request } from '../support/engine-helpers.js';

const quiet = { onWarning() {} };
const engine = () => createIdempotency({ store: memoryStore(quiet), sweepIntervalMs: 0, ...quiet });

describe('header records are read case-insensitively', () => {
  it('a capitalised Idempotency-Key and Authorization are found', async () => {
    const d = await engine().begin(
      request({
        headers: { 'Idempotency-Key': 'k1', Authorization: 'Bearer a', 'Content-Type': 'application/json' },
      }),
    );
    assert.equal(d.kind, 'execute');
  });

  it('the principal is the same whatever the case of the Authorization name', async () => {
    const idem = engine();
    const first = await idem.begin(
      request({ headers: { 'idempotency-key': 'k2', authorization: 'Bearer a' } }),
    );
    assert.equal(first.kind, 'execute');
    await first.commit({ status: 201, headers: [], body: Buffer.from('{}') });

    const retry = await idem.begin(
      request({ headers: { 'IDEMPOTENCY-KEY': 'k2', AUTHORIZATION: 'Bearer a' } }),
    );
    const otherCaller = await idem.begin(
      request({ headers: { 'Idempotency-Key': 'k2', Authorization: 'Bearer b' } }),
    );

    assert.equal(retry.kind, 'replay');
    assert.equal(otherCaller.kind, 'execute', 'another principal never sees the first one');
  });

  it('a capitalised Content-Type still selects canonical JSON for the fingerprint', async () => {
    const idem = engine();
    const headers = {
      'Idempotency-Key': 'k3',
      Authorization: 'Bearer a',
      'Content-Type': 'application/json',
    };
    const first = await idem.begin(request({ headers, body: Buffer.from('{"a":1,"b":2}') }));
    assert.equal(first.kind, 'execute');
    await first.commit({ status: 201, headers: [], body: Buffer.from('{}') });
    const reordered = await idem.begin(request({ headers, body: Buffer.from('{"b":2,"a":1}') }));
    assert.equal(reordered.kind, 'replay');
  });

  it('two names that differ only in case are two field lines: 400 invalid-key', async () => {
    const d = await engine().begin(
      request({ headers: { 'idempotency-key': 'a', 'Idempotency-Key': 'b', authorization: 'Bearer a' } }),
    );
    assert.equal(d.kind, 'reject');
    assert.equal(d.code, 'invalid-key');
  });

  it('headerValues collects every line of a name across cases, in order; a lowercase record is read as is', () => {
    assert.deepEqual(headerValues({ Accept: 'a', accept: ['b', 'c'], ACCEPT: 'd' }, 'accept'), [
      'a',
      'b',
      'c',
      'd',
    ]);
    assert.deepEqual(headerValues({ accept: 'a' }, 'accept'), ['a']);
    assert.deepEqual(headerValues({ Other: 'x' }, 'accept'), []);
    assert.equal(headerValue({ 'X-Tenant': 't1' }, 'x-tenant'), 't1');
    assert.equal(headerValue(new Headers({ 'X-Tenant': 't1' }), 'x-tenant'), 't1');
  });
});
