import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createIdempotency } from '../../src/core/engine.js';
import { StoreUnavailableError } from '../../src/core/errors.js';
import type { IdempotencyStore } from '../../src/core/store.js';
import { withTimeout } from '../../src/core/store-call.js';
import { memoryStore } from '../../src/stores/memory.js';

const never = () => new Promise<never>(() => {});

describe('store-call timeouts (one shared timer)', () => {
  it('a call that never answers is refused with StoreUnavailableError about timeoutMs later', async () => {
    const started = performance.now();
    await assert.rejects(withTimeout('claim', never, 100), StoreUnavailableError);
    const took = performance.now() - started;
    assert.ok(took >= 99 && took < 1_000, `refused after ${took} ms`);
  });

  it('calls with different timeouts each time out on their own schedule', async () => {
    const order: number[] = [];
    const runs = [300, 50, 150].map((ms) =>
      withTimeout('get', never, ms).catch((error: unknown) => {
        assert.ok(error instanceof StoreUnavailableError);
        order.push(ms);
      }),
    );
    await Promise.all(runs);
    assert.deepEqual(order, [50, 150, 300]);
  });

  it('an answer in time resolves, and a late answer reaches onLateResult', async () => {
    assert.equal(await withTimeout('get', async () => 7, 100), 7);
    const late: string[] = [];
    const slow = () => new Promise<string>((resolve) => setTimeout(() => resolve('granted'), 150));
    await assert.rejects(
      withTimeout('claim', slow, 50, (v) => late.push(v)),
      StoreUnavailableError,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(late, ['granted']);
  });

  it('errors pass through, thrown or rejected', async () => {
    await assert.rejects(
      withTimeout('get', () => Promise.reject(new Error('boom')), 100),
      /boom/,
    );
    await assert.rejects(
      withTimeout(
        'get',
        () => {
          throw new Error('sync');
        },
        100,
      ),
      /sync/,
    );
  });

  it('the memory store skips the race, but a decorator spread from it keeps it: its hanging claim still gets 503', async () => {
    const quiet = { onWarning() {} };
    // A spread copies own enumerable properties only: the in-process mark must not come along,
    // or this decorator's claim (which never answers) would hang the request forever.
    const store: IdempotencyStore = { ...memoryStore(quiet), claim: never };
    const idem = createIdempotency({ store, storeTimeoutMs: 100, ...quiet });
    const started = performance.now();
    const d = await idem.begin({
      method: 'POST',
      path: '/charges',
      headers: { 'idempotency-key': 'k1', authorization: 'Bearer a' },
      body: new Uint8Array(0),
    });
    assert.equal(d.kind, 'reject');
    assert.equal(d.kind === 'reject' && d.code, 'store-unavailable');
    assert.ok(performance.now() - started < 2_000);
    await idem.close();
  });
});
