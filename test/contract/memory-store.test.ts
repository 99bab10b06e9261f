import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StoreUnavailableError } from '../../src/core/errors.js';
import { memoryStore } from '../../src/stores/memory.js';
import type { ClaimRequest } from '../../src/stores/types.js';
import { defineStoreContract } from '../../src/testing/store-contract.js';

function testClock(start = 1_700_000_000_000) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

defineStoreContract({
  name: 'memory',
  describe,
  it,
  create: async () => {
    const clock = testClock();
    return { store: memoryStore({ clock: clock.now, onWarning: () => {} }), clock };
  },
});

describe('memory store', () => {
  const claim = (key: string, leaseMs = 1_000): ClaimRequest => ({
    key,
    fingerprint: 'fp',
    token: `token-${key}`,
    leaseMs,
    retentionMs: 100,
  });

  it('refuses a new key with StoreUnavailableError at maxEntries, and admits it once a record expired', async () => {
    const clock = testClock();
    const store = memoryStore({ maxEntries: 2, clock: clock.now, onWarning: () => {} });
    await store.claim(claim('a'));
    await store.claim(claim('b'));
    await store.complete({
      key: 'a',
      token: 'token-a',
      retentionMs: 100,
      response: { status: 200, headers: [], body: new Uint8Array() },
    });

    await assert.rejects(store.claim(claim('c')), StoreUnavailableError);
    clock.advance(100);
    const admitted = await store.claim(claim('c'));

    assert.deepEqual(admitted, { outcome: 'acquired', generation: 1 });
    assert.equal(await store.get('a'), undefined);
    assert.equal((await store.get('b'))?.state, 'in_progress');
  });

  it('never evicts a live record to make room', async () => {
    const store = memoryStore({ maxEntries: 1, onWarning: () => {} });
    await store.claim(claim('live', 60_000));

    await assert.rejects(store.claim(claim('new')), StoreUnavailableError);

    assert.equal((await store.get('live'))?.state, 'in_progress');
  });

  it('sweeps expired records lazily on new claims, so the map stays bounded without sweep()', async () => {
    const clock = testClock();
    const store = memoryStore({ maxEntries: 10_000, clock: clock.now, onWarning: () => {} });
    const keys = Array.from({ length: 200 }, (_, i) => `key-${i}`);

    for (const key of keys) {
      await store.claim(claim(key));
      await store.release({ key, token: `token-${key}`, retentionMs: 10 });
      clock.advance(20);
    }

    const left = (await Promise.all(keys.map((key) => store.get(key)))).filter(Boolean);
    assert.ok(left.length <= 3, `${left.length} expired records are still held`);
  });

  it('warns once that it keeps records in one process only', () => {
    const warnings: string[] = [];

    memoryStore({ onWarning: (message) => warnings.push(message) });

    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /one process|this process only/);
  });
});
