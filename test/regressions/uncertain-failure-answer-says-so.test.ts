// Audit: after ctx.effectsStarted() and a throw, the 500 said "retry with the same key" and sent
// Retry-After: 1, although that retry is refused with 409 outcome-uncertain.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { withIdempotency } from '../../src/adapters/fetch.js';
import { createIdempotency, IdempotencyError, memoryStore } from '../../src/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { request } from '../support/engine-helpers.js';

const quiet = { onWarning() {} };

type Problem = { type: string; status: number; detail: string };
const problemOf = (body: Uint8Array) => JSON.parse(Buffer.from(body).toString('utf8')) as Problem;
const retryAfterOf = (headers: readonly [string, string][]) =>
  headers.find(([n]) => n === 'retry-after')?.[1];

describe('the answer to a failed execution says what a retry will get', () => {
  it('over HTTP: a throw after effectsStarted() answers 500 without Retry-After, naming the 409 to expect', async () => {
    const served = await serveFetch(
      withIdempotency(
        (_request, ctx) => {
          ctx?.effectsStarted();
          throw new Error('card network timed out');
        },
        { store: memoryStore(quiet), sweepIntervalMs: 0, ...quiet },
      ),
    );
    try {
      const key = randomUUID();
      const send = () =>
        fetch(`${served.url}/pay`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: 'Bearer u1', 'idempotency-key': key },
          body: '{}',
          signal: AbortSignal.timeout(5_000),
        });
      const failed = await send();
      const problem = (await failed.json()) as Problem;
      assert.equal(failed.status, 500);
      assert.equal(problem.type, 'urn:idemkit:problem:handler-error');
      assert.equal(failed.headers.get('retry-after'), null);
      assert.match(problem.detail, /uncertain/);
      assert.match(problem.detail, /409 outcome-uncertain/);
      assert.doesNotMatch(problem.detail, /retry with the same key/);

      const retry = await send();
      assert.equal(retry.status, 409);
      assert.equal(((await retry.json()) as Problem).type, 'urn:idemkit:problem:outcome-uncertain');
    } finally {
      await served.close();
    }
  });

  it('an idemkit error (the gateway upstream codes) after effectsStarted() keeps its code, without Retry-After', async () => {
    const idem = createIdempotency({ store: memoryStore(quiet), sweepIntervalMs: 0, ...quiet });
    const d = await idem.begin(request());
    assert.equal(d.kind, 'execute');
    d.ctx.effectsStarted();
    const result = await d.abort(new IdempotencyError('upstream-unavailable', 'connection reset'));
    assert.equal(result.disposition, 'uncertain');
    assert.equal(result.response.status, 502);
    assert.equal(retryAfterOf(result.response.headers), undefined);
    assert.match(problemOf(result.response.body).detail, /409 outcome-uncertain/);
  });

  it('classify() holding a failure as uncertain gets the same honest answer', async () => {
    const idem = createIdempotency({
      store: memoryStore(quiet),
      classify: () => 'uncertain',
      sweepIntervalMs: 0,
      ...quiet,
    });
    const d = await idem.begin(request());
    assert.equal(d.kind, 'execute');
    const result = await d.abort(new Error('boom'));
    assert.equal(result.disposition, 'uncertain');
    assert.equal(retryAfterOf(result.response.headers), undefined);
    assert.match(problemOf(result.response.body).detail, /409 outcome-uncertain/);
  });

  it('a failure that is stored for replay says so, without Retry-After', async () => {
    const idem = createIdempotency({
      store: memoryStore(quiet),
      classify: () => 'store',
      sweepIntervalMs: 0,
      ...quiet,
    });
    const d = await idem.begin(request());
    assert.equal(d.kind, 'execute');
    const result = await d.abort(new Error('boom'));
    assert.equal(result.disposition, 'store');
    assert.equal(retryAfterOf(result.response.headers), undefined);
    assert.match(problemOf(result.response.body).detail, /replay/);
    const replay = await idem.begin(request());
    assert.equal(replay.kind, 'replay');
    assert.deepEqual(Buffer.from(replay.response.body), Buffer.from(result.response.body));
  });

  it('a released failure still invites the retry: Retry-After: 1, "retry with the same key"', async () => {
    const idem = createIdempotency({ store: memoryStore(quiet), sweepIntervalMs: 0, ...quiet });
    const d = await idem.begin(request());
    assert.equal(d.kind, 'execute');
    const result = await d.abort(new Error('boom'));
    assert.equal(result.disposition, 'release');
    assert.equal(retryAfterOf(result.response.headers), '1');
    assert.match(problemOf(result.response.body).detail, /retry with the same key/);
    assert.equal((await idem.begin(request())).kind, 'execute');
  });

  it('a classify() that throws still ends the execution: the default policy decides, once warned', async () => {
    const warnings: string[] = [];
    const idem = createIdempotency({
      store: memoryStore(quiet),
      maxInFlightPerPrincipal: 1,
      classify: () => {
        throw new Error('classify bug');
      },
      sweepIntervalMs: 0,
      onWarning: (m) => warnings.push(m),
    });
    const stored = await idem.begin(request({ key: 'stored' }));
    assert.equal(stored.kind, 'execute');
    const result = await stored.commit({ status: 201, headers: [], body: Buffer.from('{"ok":1}') });
    assert.equal(result.response.status, 201, 'the real response is sent');
    assert.equal(result.disposition, 'store');
    assert.equal((await idem.begin(request({ key: 'stored' }))).kind, 'replay');

    const failed = await idem.begin(request({ key: 'failed' }));
    assert.equal(failed.kind, 'execute', 'the in-flight slot was freed');
    const aborted = await failed.abort(new Error('boom'));
    assert.equal(aborted.disposition, 'release');
    assert.equal(
      (await idem.begin(request({ key: 'failed' }))).kind,
      'execute',
      'released, not left to its lease',
    );
    assert.equal(warnings.filter((m) => m.includes('classify() threw')).length, 1);
  });
});
