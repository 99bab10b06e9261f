// The gateway wraps its store to time every call for /_idemkit/metrics. The wrapper listed the
// contract's calls one by one and left out `onSettled`, the store's cross-process "this key is
// settled" notification (PostgreSQL LISTEN/NOTIFY, Redis pub/sub): a duplicate waiting at one
// gateway for a request running at another only polled. The wrapper now passes it through.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { IdempotencyStore } from '../../src/core/store.js';
import { createGatewayMetrics } from '../../src/gateway/metrics.js';
import { memoryStore } from '../../src/index.js';

it("the gateway's timed store passes the store's settle notifications through", () => {
  const listeners = new Map<string, () => void>();
  const inner: IdempotencyStore = Object.assign(memoryStore({ onWarning() {} }), {
    onSettled(key: string, listener: () => void) {
      listeners.set(key, listener);
      return () => listeners.delete(key);
    },
  });
  const timed = createGatewayMetrics().timed(inner);
  assert.equal(typeof timed.onSettled, 'function', 'the wrapper offers onSettled');
  let woken = 0;
  const stop = timed.onSettled?.('k1', () => woken++);
  listeners.get('k1')?.();
  assert.equal(woken, 1, 'a settle the store reports reaches the waiter');
  stop?.();
  assert.equal(listeners.has('k1'), false, 'unsubscribing reaches the store');
});

it('a store without notifications stays without them (the engine polls)', () => {
  const timed = createGatewayMetrics().timed(memoryStore({ onWarning() {} }));
  assert.equal(timed.onSettled, undefined);
});
