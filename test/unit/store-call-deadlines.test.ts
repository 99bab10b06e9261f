import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StoreUnavailableError } from '../../src/core/errors.js';
import { withTimeout } from '../../src/core/store-call.js';

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
});
