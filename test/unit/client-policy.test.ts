import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AttemptOutcome } from '../../src/client/attempt.js';
import { placeKey } from '../../src/client/carrier.js';
import { ClientConfigError, createClient } from '../../src/client/index.js';
import { HEADER_CARRIER, type RetryPolicy, resolvePolicy } from '../../src/client/policy.js';
import { bestMatch, compileRoute, firstMatch } from '../../src/client/routes.js';
import { judge } from '../../src/client/verdict.js';

const keyed: RetryPolicy = { kind: 'keyed', carrier: HEADER_CARRIER };
const idempotent: RetryPolicy = { kind: 'idempotent' };
const unsafe: RetryPolicy = { kind: 'unsafe' };

function answer(status: number, problem?: string, headers: Record<string, string> = {}): AttemptOutcome {
  return { kind: 'answer', response: new Response(null, { status, headers }), problem };
}
const failure = (timedOut: boolean, notSent = false): AttemptOutcome => ({
  kind: 'failure',
  error: new TypeError('fetch failed'),
  timedOut,
  notSent,
});

describe('client retry rules per policy', () => {
  it('keyed and idempotent operations retry network errors, timeouts, 408, 425, 429 and 5xx', () => {
    for (const policy of [keyed, idempotent]) {
      for (const outcome of [
        failure(false),
        failure(true),
        ...[408, 425, 429, 500, 502, 503, 504, 599].map((s) => answer(s)),
      ]) {
        assert.equal(judge(outcome, policy).kind, 'retry', `${policy.kind} ${JSON.stringify(outcome)}`);
      }
    }
  });

  it('no policy retries 400, 401, 403, 404, 413, 422 or a 5xx a retry cannot change (501, 505, 511)', () => {
    for (const policy of [keyed, idempotent, unsafe]) {
      for (const status of [200, 201, 204, 301, 400, 401, 403, 404, 413, 422, 501, 505, 511]) {
        assert.equal(judge(answer(status), policy).kind, 'final', `${policy.kind} ${status}`);
      }
    }
  });

  it('409 in-progress and lease-lost are retried; outcome-uncertain ends in outcome-unknown; other 409s are final', () => {
    assert.equal(judge(answer(409, 'in-progress'), keyed).kind, 'retry');
    assert.equal(judge(answer(409, 'lease-lost'), keyed).kind, 'retry');
    assert.equal(judge(answer(409, 'outcome-uncertain'), keyed).kind, 'outcome-unknown');
    assert.equal(judge(answer(409, 'result-unavailable'), keyed).kind, 'final');
    assert.equal(judge(answer(409), keyed).kind, 'final');
    // A server other than idemkit saying "still running, come back later" (Stripe-style 409).
    assert.equal(judge(answer(409, undefined, { 'retry-after': '1' }), keyed).kind, 'retry');
    assert.equal(judge(answer(409, undefined, { 'retry-after': '1' }), unsafe).kind, 'final');
  });

  it('422 key-reused is surfaced as such, a plain 422 is a final answer', () => {
    assert.equal(judge(answer(422, 'key-reused'), keyed).kind, 'key-reused');
    assert.equal(judge(answer(422, 'validation-failed'), keyed).kind, 'final');
  });

  it('an unsafe operation is retried only when the request provably was not processed', () => {
    assert.equal(judge(failure(false, true), unsafe).kind, 'retry'); // refused, DNS: never sent
    for (const status of [408, 425, 429, 503]) assert.equal(judge(answer(status), unsafe).kind, 'retry');
    assert.equal(judge(failure(false), unsafe).kind, 'outcome-unknown'); // reset after sending
    assert.equal(judge(failure(true), unsafe).kind, 'outcome-unknown'); // timed out after sending
    for (const status of [500, 502, 504]) assert.equal(judge(answer(status), unsafe).kind, 'unsafe-stop');
  });
});

describe('client policies: shorthands, method defaults, routes', () => {
  it('shorthands resolve to one shape; a bad policy or carrier is a config error', () => {
    assert.deepEqual(resolvePolicy('keyed', 'x'), keyed);
    assert.deepEqual(resolvePolicy({ kind: 'keyed', carrier: { in: 'query', name: 'ClientToken' } }, 'x'), {
      kind: 'keyed',
      carrier: { in: 'query', name: 'ClientToken' },
    });
    assert.throws(() => resolvePolicy('maybe' as 'keyed', 'x'), ClientConfigError);
    assert.throws(
      () => resolvePolicy({ kind: 'keyed', carrier: { in: 'cookie' as 'header', name: 'k' } }, 'x'),
      ClientConfigError,
    );
  });

  it('methods: GET/HEAD/PUT/DELETE/OPTIONS idempotent, POST/PATCH keyed, or unsafe when the servers take no keys', async () => {
    const client = createClient({ baseUrl: 'http://127.0.0.1:1' });
    const strict = createClient({ baseUrl: 'http://127.0.0.1:1', nonIdempotentMethods: 'unsafe' });

    for (const method of ['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']) {
      assert.equal((await client.policyFor(method, '/x')).kind, 'idempotent');
    }
    assert.deepEqual(await client.policyFor('POST', '/x'), keyed);
    assert.deepEqual(await client.policyFor('patch', '/x'), keyed);
    assert.equal((await strict.policyFor('POST', '/x')).kind, 'unsafe');
  });

  it('per-route rules: first match wins, by method and path (exact, {param}, trailing *), relative to baseUrl', async () => {
    const client = createClient({
      baseUrl: 'http://127.0.0.1:1/api/v1',
      routes: [
        { method: 'POST', path: '/search', policy: 'idempotent' },
        { path: '/legacy/*', policy: 'unsafe' },
        {
          method: ['POST', 'PUT'],
          path: '/instances/{id}/start',
          policy: { kind: 'keyed', carrier: { in: 'query', name: 'ClientToken' } },
        },
      ],
    });

    assert.equal((await client.policyFor('POST', '/search')).kind, 'idempotent');
    assert.equal((await client.policyFor('POST', 'http://127.0.0.1:1/api/v1/search')).kind, 'idempotent');
    assert.equal((await client.policyFor('DELETE', '/legacy/things/1')).kind, 'unsafe');
    assert.deepEqual(await client.policyFor('POST', '/instances/i-123/start'), {
      kind: 'keyed',
      carrier: { in: 'query', name: 'ClientToken' },
    });
    assert.deepEqual(await client.policyFor('POST', '/instances/a/b/start'), keyed); // a {param} is one segment
  });

  it('OpenAPI templates: the most specific strict match wins; a parameter may span segments when nothing else matches', () => {
    const ops = [
      compileRoute('POST', '/payments/{id}', idempotent),
      compileRoute('POST', '/payments/details', unsafe),
      compileRoute('POST', '/v1/{parent}/hubs', keyed),
    ];

    assert.equal(bestMatch(ops, 'POST', '/payments/details')?.policy, unsafe);
    assert.equal(bestMatch(ops, 'POST', '/payments/psp_1')?.policy, idempotent);
    assert.equal(bestMatch(ops, 'POST', '/v1/projects/p/locations/global/hubs')?.policy, keyed);
    assert.equal(bestMatch(ops, 'GET', '/payments/details'), undefined);
    assert.equal(firstMatch(ops, 'POST', '/payments/details')?.policy, idempotent); // routes keep their order
  });
});

describe('client key carriers', () => {
  const parts = (body?: string, contentType = 'application/json') => ({
    url: new URL('http://h/p?a=1'),
    headers: new Headers(body === undefined ? {} : { 'content-type': contentType }),
    body: body === undefined ? undefined : new TextEncoder().encode(body),
  });
  const text = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes);

  it('header and query carriers set the key, or read the one the request already carries', () => {
    const header = parts();
    const query = parts();
    const given = parts();
    given.headers.set('Idempotency-Key', 'mine');

    const h = placeKey(HEADER_CARRIER, header, 'k-1');
    const q = placeKey({ in: 'query', name: 'ClientToken' }, query, undefined);
    const g = placeKey(HEADER_CARRIER, given, undefined);

    assert.equal(h.key, 'k-1');
    assert.equal(header.headers.get('idempotency-key'), 'k-1');
    assert.match(q.key, /^[0-9a-f-]{36}$/);
    assert.equal(query.url.search, `?a=1&ClientToken=${q.key}`);
    assert.equal(g.key, 'mine');
    assert.throws(() => placeKey(HEADER_CARRIER, given, 'other'), ClientConfigError);
  });

  it('a JSON body field is spliced into the text, keeping the bytes around it (large integers, spacing, order)', () => {
    const body = '{ "amount": 12345678901234567890, "z": 1, "a": [1.0] }';

    const placed = placeKey({ in: 'body', name: 'request_id' }, parts(body), 'r-1');
    const empty = placeKey({ in: 'body', name: 'request_id' }, parts('{}'), 'r-2');
    const none = parts();
    const created = placeKey({ in: 'body', name: 'requestId' }, none, 'r-3');

    assert.equal(
      text(placed.body),
      '{"request_id":"r-1", "amount": 12345678901234567890, "z": 1, "a": [1.0] }',
    );
    assert.equal(text(empty.body), '{"request_id":"r-2"}');
    assert.equal(text(created.body), '{"requestId":"r-3"}');
    assert.equal(none.headers.get('content-type'), 'application/json');
  });

  it('a body field already present is the key; a form body gets the field appended; other bodies are refused', () => {
    const present = placeKey(
      { in: 'body', name: 'clientToken' },
      parts('{"clientToken":"ct-9","x":1}'),
      undefined,
    );
    const form = placeKey(
      { in: 'body', name: 'ClientToken' },
      parts('Action=RunInstances', 'application/x-www-form-urlencoded'),
      'ct-1',
    );

    assert.equal(present.key, 'ct-9');
    assert.equal(text(present.body), '{"clientToken":"ct-9","x":1}');
    assert.equal(text(form.body), 'Action=RunInstances&ClientToken=ct-1');
    assert.throws(() => placeKey({ in: 'body', name: 'request_id' }, parts('[1,2]'), 'k'), ClientConfigError);
    assert.throws(() => placeKey({ in: 'body', name: 'n' }, parts('{"n":5}'), undefined), ClientConfigError);
  });

  it('keys outside 1-255 printable ASCII are refused before anything is sent', () => {
    for (const bad of ['', 'has space', 'ключ', 'x'.repeat(256)]) {
      assert.throws(() => placeKey(HEADER_CARRIER, parts(), bad), ClientConfigError, bad);
    }
  });
});
