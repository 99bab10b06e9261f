import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isInProcess } from '../../src/core/store-call.js';
import { createGatewayMetrics } from '../../src/gateway/metrics.js';
import { createIdempotency } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import { request } from '../support/engine-helpers.js';

describe('gateway metrics', () => {
  it('store latency: Prometheus histogram lines per operation, rejections and throws counted too', async () => {
    const metrics = createGatewayMetrics();
    const inner = memoryStore({ onWarning() {} });
    const store = metrics.timed(inner);
    await store.get('0'.repeat(64));
    await store.get('1'.repeat(64));
    const failing = metrics.timed({
      ...inner,
      get: () => Promise.reject(new Error('down')),
      delete: () => {
        throw new Error('sync throw');
      },
    });
    await assert.rejects(failing.get('2'.repeat(64)), /down/);
    // A store that throws instead of rejecting still hands the engine a rejected promise.
    const thrown = failing.delete('3'.repeat(64));
    assert.ok(thrown instanceof Promise);
    await assert.rejects(thrown, /sync throw/);

    const text = await metrics.registry.metrics();
    assert.match(text, /^# TYPE idemkit_store_latency_seconds histogram$/m);
    assert.match(text, /^idemkit_store_latency_seconds_bucket\{le="\+Inf",operation="get"\} 3$/m);
    assert.match(text, /^idemkit_store_latency_seconds_bucket\{le="2\.5",operation="get"\} 3$/m);
    assert.match(text, /^idemkit_store_latency_seconds_count\{operation="get"\} 3$/m);
    assert.match(text, /^idemkit_store_latency_seconds_count\{operation="delete"\} 1$/m);
    assert.match(text, /^idemkit_store_latency_seconds_sum\{operation="get"\} [0-9.e-]+$/m);
    assert.doesNotMatch(text, /operation="claim"/, 'operations never called print no series');
    await inner.close();
  });

  it('counters: every event up to a scrape is counted, labelled ones per label, and scrapes add up', async () => {
    const metrics = createGatewayMetrics();
    metrics.observe({ type: 'execute', key: 'k' } as never);
    metrics.observe({ type: 'execute', key: 'k' } as never);
    metrics.observe({ type: 'reject', code: 'missing-key', status: 400 } as never);
    const first = await metrics.registry.metrics();
    assert.match(first, /^idemkit_executions_total 2$/m);
    assert.match(first, /^idemkit_replays_total 0$/m);
    assert.match(first, /^idemkit_rejections_total\{code="missing-key"\} 1$/m);

    metrics.observe({ type: 'execute', key: 'k' } as never);
    metrics.observe({ type: 'reject', code: 'missing-key', status: 400 } as never);
    metrics.observe({ type: 'reject', code: 'invalid-key', status: 400 } as never);
    const second = await metrics.registry.metrics();
    assert.match(second, /^idemkit_executions_total 3$/m);
    assert.match(second, /^idemkit_rejections_total\{code="missing-key"\} 2$/m);
    assert.match(second, /^idemkit_rejections_total\{code="invalid-key"\} 1$/m);
  });

  it('the timed memory store stays in-process; a timed store that hangs still meets storeTimeoutMs', {
    timeout: 10_000,
  }, async () => {
    const metrics = createGatewayMetrics();
    const inner = memoryStore({ onWarning() {} });
    assert.equal(isInProcess(metrics.timed(inner)), true, 'timing adds no I/O to the memory store');
    // A spread copy is no longer the memory store (its calls may do anything): no mark, so the
    // engine keeps racing its calls against the timeout.
    const hanging = metrics.timed({ ...inner, claim: () => new Promise<never>(() => {}) });
    assert.equal(isInProcess(hanging), false);
    const idem = createIdempotency({
      store: hanging,
      storeTimeoutMs: 50,
      sweepIntervalMs: 0,
      onWarning() {},
    });
    const started = Date.now();
    const decision = await idem.begin(request({ key: 'hangs' }));
    assert.equal(decision.kind === 'reject' && decision.code, 'store-unavailable');
    assert.ok(Date.now() - started < 5_000, 'answered, not hung');
    await idem.close();
  });
});
