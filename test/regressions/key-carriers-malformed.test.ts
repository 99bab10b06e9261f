// Audit: the other key carriers were laxer than the header. `?ClientToken=a&ClientToken=b` was
// accepted (first wins) where two header lines are refused, and a body field that is present but
// not a string (`{"request_id": 42}`) answered missing-key instead of invalid-key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withIdempotency } from '../../src/adapters/fetch.js';
import { createIdempotency, memoryStore } from '../../src/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { request } from '../support/engine-helpers.js';

const quiet = { onWarning() {} };

describe('query carrier (EC2 ClientToken)', () => {
  const engine = () =>
    createIdempotency({
      store: memoryStore(quiet),
      keyFrom: { queryParam: 'ClientToken' },
      sweepIntervalMs: 0,
      ...quiet,
    });

  it('one ClientToken is the key', async () => {
    const d = await engine().begin(request({ key: null, query: 'ClientToken=a1' }));
    assert.equal(d.kind, 'execute');
  });

  it('a repeated ClientToken is 400 invalid-key, like two header lines', async () => {
    for (const query of [
      'ClientToken=a&ClientToken=b',
      'ClientToken=a&ClientToken=a',
      'x=1&ClientToken=a&ClientToken=',
    ]) {
      const d = await engine().begin(request({ key: null, query }));
      assert.equal(d.kind, 'reject', query);
      assert.equal(d.code, 'invalid-key', query);
    }
  });

  it('over HTTP: the repeated token is refused before the handler runs', async () => {
    let executions = 0;
    const served = await serveFetch(
      withIdempotency(
        () => {
          executions++;
          return new Response('ran', { status: 201 });
        },
        {
          store: memoryStore(quiet),
          keyFrom: { queryParam: 'ClientToken' },
          sweepIntervalMs: 0,
          ...quiet,
        },
      ),
    );
    try {
      const response = await fetch(`${served.url}/pay?ClientToken=a&ClientToken=b`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer u1' },
        body: '{}',
        signal: AbortSignal.timeout(5_000),
      });
      const problem = (await response.json()) as { type: string };
      assert.equal(response.status, 400);
      assert.equal(problem.type, 'urn:idemkit:problem:invalid-key');
      assert.equal(executions, 0);
    } finally {
      await served.close();
    }
  });
});

describe('body-field carrier (AIP-155 request_id)', () => {
  const engine = () =>
    createIdempotency({
      store: memoryStore(quiet),
      keyFrom: { bodyField: 'request_id' },
      sweepIntervalMs: 0,
      ...quiet,
    });
  const withBody = (body: string) => request({ key: null, body: Buffer.from(body) });

  it('a string field is the key', async () => {
    assert.equal((await engine().begin(withBody('{"request_id":"r-1","amount":1}'))).kind, 'execute');
  });

  it('a field that is present but not a string is 400 invalid-key', async () => {
    for (const value of ['42', 'null', 'true', '{"id":"r-1"}', '["r-1"]']) {
      const d = await engine().begin(withBody(`{"request_id":${value}}`));
      assert.equal(d.kind, 'reject', value);
      assert.equal(d.code, 'invalid-key', value);
    }
  });

  it('a body without the field, or that is not JSON, stays 400 missing-key', async () => {
    for (const body of [
      '{"amount":1}',
      'request_id=r-1',
      '{"request_id":',
      '["request_id","r-1"]',
      '{"nested":{"request_id":"r"}}',
    ]) {
      const d = await engine().begin(withBody(body));
      assert.equal(d.kind, 'reject', body);
      assert.equal(d.code, 'missing-key', body);
    }
  });
});
