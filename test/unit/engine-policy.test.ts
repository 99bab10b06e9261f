import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  createIdempotency,
  IdempotencyConfigError,
  type IdempotencyEvent,
  type IdempotencyStore,
  isIdempotencyError,
  memoryStore,
  StoreMisconfiguredError,
} from '../../src/index.js';
import { faultyStore, request, response } from '../support/engine-helpers.js';

const quiet = { onWarning() {} };

describe('engine: store/release policy (F5)', () => {
  it('a failure after effectsStarted() holds the key as uncertain: 409 outcome-uncertain', async () => {
    const idem = createIdempotency({ store: memoryStore(quiet), ...quiet });
    const first = await idem.begin(request());
    assert.equal(first.kind, 'execute');
    first.ctx.effectsStarted();

    const failed = await first.abort(new Error('payment provider timed out'));
    const retry = await idem.begin(request());

    assert.equal(failed.disposition, 'uncertain');
    assert.equal(failed.response.status, 500);
    assert.equal(retry.kind, 'reject');
    assert.equal(retry.code, 'outcome-uncertain');
  });

  it('classify() overrides the policy: a 503 may be stored and replayed', async () => {
    const idem = createIdempotency({ store: memoryStore(quiet), classify: () => 'store', ...quiet });
    const first = await idem.begin(request());
    assert.equal(first.kind, 'execute');
    await first.commit(response(503, '{"down":true}'));

    const retry = await idem.begin(request());

    assert.equal(retry.kind, 'replay');
    assert.equal(retry.response.status, 503);
  });

  it('at maxInFlightPerPrincipal a principal gets 429 capacity; others are unaffected', async () => {
    const idem = createIdempotency({ store: memoryStore(quiet), maxInFlightPerPrincipal: 1, ...quiet });
    const first = await idem.begin(request({ key: 'a' }));
    assert.equal(first.kind, 'execute');

    const second = await idem.begin(request({ key: 'b' }));
    const otherPrincipal = await idem.begin(
      request({ key: 'b', headers: { 'idempotency-key': 'b', authorization: 'Bearer u2' } }),
    );

    assert.equal(second.kind, 'reject');
    assert.equal(second.code, 'capacity');
    assert.equal(second.response.status, 429);
    assert.equal(otherPrincipal.kind, 'execute');
    await first.commit(response());
    assert.equal((await idem.begin(request({ key: 'b' }))).kind, 'execute', 'the slot is free again');
  });

  it('T47 the stored fingerprint is an HMAC, not a plain hash of the body', async () => {
    const store = memoryStore(quiet);
    const idem = createIdempotency({ store, secret: 'a-server-secret-of-32-characters!', ...quiet });
    const d = await idem.begin(request());
    assert.equal(d.kind, 'execute');

    const record = await store.get(d.key);

    const plain = createHash('sha256').update('{"amount":1}').digest();
    assert.ok(record);
    assert.match(record.fingerprint, /^1:[A-Za-z0-9_-]{43}$/);
    assert.ok(!record.fingerprint.includes(plain.toString('base64url')));
    assert.ok(!record.fingerprint.includes(plain.toString('hex')));
  });

  it('after secret rotation, records made with the old version still replay', async () => {
    const store = memoryStore(quiet);
    const v1 = { version: 1, key: 'first-secret-0123456789' };
    const v2 = { version: 2, key: 'second-secret-0123456789' };
    const before = createIdempotency({ store, secret: [v1], ...quiet });
    const d = await before.begin(request());
    assert.equal(d.kind, 'execute');
    await d.commit(response());

    const after = createIdempotency({ store, secret: [v1, v2], ...quiet });
    const retry = await after.begin(request());
    const changed = await after.begin(request({ body: Buffer.from('{"amount":9}') }));

    assert.equal(retry.kind, 'replay');
    assert.equal(changed.kind, 'reject');
    assert.equal(changed.code, 'key-reused');
  });

  it('events carry the hashed store key, never the client key', async () => {
    const events: IdempotencyEvent[] = [];
    const idem = createIdempotency({ store: memoryStore(quiet), onEvent: (e) => events.push(e), ...quiet });
    const d = await idem.begin(request({ key: 'customer-42-secret-order' }));
    assert.equal(d.kind, 'execute');
    await d.commit(response());
    await idem.begin(request({ key: 'customer-42-secret-order' }));

    assert.deepEqual(
      events.map((e) => e.type),
      ['execute', 'replay'],
    );
    assert.ok(!JSON.stringify(events).includes('customer-42'));
  });
});

describe('engine: store failures (F3, I9)', () => {
  it('T19 a store error before the claim answers 503 with Retry-After and does not run the handler', async () => {
    const faulty = faultyStore(memoryStore(quiet));
    const idem = createIdempotency({ store: faulty.store, ...quiet });
    faulty.fail('claim');

    const d = await idem.begin(request());

    assert.equal(d.kind, 'reject');
    assert.equal(d.code, 'store-unavailable');
    assert.equal(d.response.status, 503);
    assert.ok(d.response.headers.some(([n, v]) => n === 'retry-after' && Number(v) >= 1));
    assert.ok(!Buffer.from(d.response.body).toString().includes('10.0.0.1'), 'no backend detail leaks');
    faulty.heal();
    assert.equal((await idem.begin(request())).kind, 'execute', 'service resumes when the store returns');
  });

  it('a hanging store answers 503 within storeTimeoutMs; a claim granted late is released at once', async () => {
    const inner = memoryStore(quiet);
    const faulty = faultyStore(inner);
    const idem = createIdempotency({ store: faulty.store, storeTimeoutMs: 100, ...quiet });
    faulty.fail('claim', 'hang');

    const started = performance.now();
    const d = await idem.begin(request());
    const elapsed = performance.now() - started;

    assert.equal(d.kind, 'reject');
    assert.equal(d.code, 'store-unavailable');
    assert.ok(elapsed < 1_000, `answered in ${elapsed.toFixed(0)} ms`);
    faulty.heal();
    await new Promise((r) => setTimeout(r, 1_700));
    const retry = await idem.begin(request());
    assert.equal(retry.kind, 'execute', 'the late claim was released, not left to block the key');
    await retry.commit(response());
  });

  it('T20 a completion that fails still sends the real response, then the background flush persists it', async () => {
    const events: IdempotencyEvent[] = [];
    const faulty = faultyStore(memoryStore(quiet));
    const idem = createIdempotency({
      store: faulty.store,
      storeTimeoutMs: 200,
      ...quiet,
      onEvent: (e) => events.push(e),
    });
    const d = await idem.begin(request());
    assert.equal(d.kind, 'execute');
    faulty.fail('complete');

    const committed = await d.commit(response(201, '{"charged":true}'));
    faulty.heal();
    await waitFor(() => events.some((e) => e.type === 'flushed'));

    assert.equal(committed.response.status, 201);
    assert.equal(committed.durable, false);
    assert.ok(events.some((e) => e.type === 'non-durable'));
    assert.ok(events.some((e) => e.type === 'flushed' && e.ok));
    const replay = await idem.begin(request());
    assert.equal(replay.kind, 'replay');
    assert.equal(Buffer.from(replay.response.body).toString(), '{"charged":true}');
  });

  it('a store that fails its check answers 503 store-misconfigured', async () => {
    const store: IdempotencyStore = {
      ...memoryStore(quiet),
      claim: () => Promise.reject(new StoreMisconfiguredError('maxmemory-policy is allkeys-lru')),
    };
    const idem = createIdempotency({ store, ...quiet });

    const d = await idem.begin(request());

    assert.equal(d.kind, 'reject');
    assert.equal(d.code, 'store-misconfigured');
  });

  it('a store whose startup check fails answers 503 store-misconfigured and never claims', async () => {
    let claims = 0;
    const inner = memoryStore(quiet);
    const store: IdempotencyStore = {
      ...inner,
      claim: (r) => {
        claims++;
        return inner.claim(r);
      },
      check: () => Promise.reject(new StoreMisconfiguredError('maxmemory-policy is allkeys-lru')),
    };
    const idem = createIdempotency({ store, ...quiet });

    const first = await idem.begin(request());
    const second = await idem.begin(request({ key: 'other' }));

    assert.equal(first.kind, 'reject');
    assert.equal(first.code, 'store-misconfigured');
    assert.equal(second.kind, 'reject');
    assert.equal(claims, 0);
  });

  it('failOpen lets the request through without idempotency when the store fails', async () => {
    const events: IdempotencyEvent[] = [];
    const faulty = faultyStore(memoryStore(quiet));
    const idem = createIdempotency({
      store: faulty.store,
      failOpen: true,
      ...quiet,
      onEvent: (e) => events.push(e),
    });
    faulty.fail('claim');

    const d = await idem.begin(request());

    assert.equal(d.kind, 'bypass');
    assert.ok(events.some((e) => e.type === 'fail-open'));
  });
});

describe('engine: configuration', () => {
  it('bad options throw IdempotencyConfigError at construction, with the option named', () => {
    const store = memoryStore(quiet);
    for (const [options, name] of [
      [{ leaseMs: 0 }, 'leaseMs'],
      [{ maxBodyBytes: -1 }, 'maxBodyBytes'],
      [{ storeTimeoutMs: 1.5 }, 'storeTimeoutMs'],
      [{ secret: 'short' }, 'secret'],
    ] as const) {
      assert.throws(
        () => createIdempotency({ store, ...quiet, ...options }),
        (error: unknown) => error instanceof IdempotencyConfigError && error.message.includes(name),
      );
    }
  });

  it('a shared store without a secret is refused: every process must sign alike', () => {
    const { defaultSecret: _omit, ...shared } = memoryStore(quiet);
    assert.throws(() => createIdempotency({ store: { ...shared, name: 'postgres' }, ...quiet }), /secret/);
  });

  it('isIdempotencyError recognises errors from another copy of the package by their brand', () => {
    const foreign = Object.assign(new Error('x'), {
      [Symbol.for('idemkit.error')]: true,
      code: 'in-progress',
    });
    assert.equal(isIdempotencyError(foreign), true);
    assert.equal(isIdempotencyError(new Error('x')), false);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
