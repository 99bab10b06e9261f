// Audit: a keyed request without a principal shared one anonymous scope by default, so two
// unauthenticated callers sending the same key got each other's results.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { withIdempotency } from '../../src/adapters/fetch.js';
import { createIdempotency, type IdempotencyEvent, memoryStore } from '../../src/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { countingStore } from '../../src/testing/store-spy.js';
import { request } from '../support/engine-helpers.js';

const quiet = { onWarning() {} };
const anonymous = (key = 'k1') => request({ headers: { 'idempotency-key': key } });

describe('the principal is required by default', () => {
  it('a keyed request without Authorization gets 401 principal-required and nothing is claimed', async () => {
    const spy = countingStore(memoryStore(quiet));
    const idem = createIdempotency({ store: spy.store, sweepIntervalMs: 0, ...quiet });

    const d = await idem.begin(anonymous());

    assert.equal(d.kind, 'reject');
    assert.equal(d.code, 'principal-required');
    assert.equal(d.response.status, 401);
    assert.equal(spy.calls(), 0);
  });

  it('a principal() that returns undefined or an empty string is refused too', async () => {
    for (const principal of [() => undefined, () => '', async () => undefined]) {
      const idem = createIdempotency({ store: memoryStore(quiet), principal, ...quiet });
      const d = await idem.begin(request());
      assert.equal(d.kind, 'reject');
      assert.equal(d.code, 'principal-required');
    }
  });

  it('over HTTP: two callers without credentials never share a result', async () => {
    let executions = 0;
    const handler = withIdempotency(() => Response.json({ execution: ++executions }, { status: 201 }), {
      store: memoryStore(quiet),
      sweepIntervalMs: 0,
      ...quiet,
    });
    const served = await serveFetch(handler);
    try {
      const key = randomUUID();
      const send = () =>
        fetch(`${served.url}/pay`, {
          method: 'POST',
          headers: { 'idempotency-key': key, 'content-type': 'application/json' },
          body: '{}',
          signal: AbortSignal.timeout(5_000),
        });
      const first = await send();
      const second = await send();
      assert.equal(first.status, 401);
      assert.equal(first.headers.get('content-type'), 'application/problem+json');
      assert.equal(((await first.json()) as { type: string }).type, 'urn:idemkit:problem:principal-required');
      assert.equal(second.status, 401);
      await second.arrayBuffer();
      assert.equal(executions, 0);
    } finally {
      await served.close();
    }
  });
});

describe('requirePrincipal: false (the anonymous scope, opted into)', () => {
  it('warns once at engine creation, also when a principal() is set', () => {
    for (const principal of [undefined, () => undefined]) {
      const warnings: string[] = [];
      createIdempotency({
        store: memoryStore(quiet),
        requirePrincipal: false,
        ...(principal ? { principal } : {}),
        onWarning: (m) => warnings.push(m),
      });
      assert.equal(warnings.length, 1, 'the warning is given before any request arrives');
      assert.match(warnings[0] as string, /anonymous/);
    }
  });

  it('does not warn about the anonymous scope when the principal is required', () => {
    const warnings: string[] = [];
    createIdempotency({ store: memoryStore(quiet), onWarning: (m) => warnings.push(m) });
    assert.deepEqual(
      warnings.filter((m) => /anonymous/.test(m)),
      [],
    );
  });

  it('emits an anonymous event for every keyed request that proceeds without a principal', async () => {
    const events: IdempotencyEvent[] = [];
    const idem = createIdempotency({
      store: memoryStore(quiet),
      requirePrincipal: false,
      onEvent: (e) => events.push(e),
      ...quiet,
    });

    const first = await idem.begin(anonymous('a'));
    const second = await idem.begin(anonymous('b'));
    await idem.begin(request({ key: 'c' }));

    assert.equal(first.kind, 'execute');
    assert.equal(second.kind, 'execute');
    const seen = events.filter((e) => e.type === 'anonymous');
    assert.deepEqual(
      seen.map((e) => Object.keys(e).sort()),
      [
        ['key', 'type'],
        ['key', 'type'],
      ],
    );
    assert.deepEqual(
      seen.map((e) => (e as { key: string }).key),
      [first.kind === 'execute' ? first.key : '', second.kind === 'execute' ? second.key : ''],
      'the event carries the hashed store key, never the client key',
    );
  });
});
