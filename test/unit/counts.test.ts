// The per-name counts behind the in-flight cap and the waiters per key keep a name at zero for a
// while instead of deleting it at once (a Map delete shrinks and regrows its table on every
// request), then drop zero counts in batches. These tests pin what must not change: the counts
// themselves, across a batch drop, and the bound on what is kept.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { Counts } from '../../src/core/counts.js';
import { createIdempotency, type Decision, memoryStore } from '../../src/index.js';

const quiet = { onWarning() {} };
const EMPTY = new Uint8Array(0);

describe('Counts', () => {
  it('counts up and down per name; a name never counted, or counted down past zero, reads 0', () => {
    const counts = new Counts();
    assert.equal(counts.get('a'), 0);
    counts.increment('a');
    counts.increment('a');
    counts.increment('b');
    assert.equal(counts.get('a'), 2);
    assert.equal(counts.has('b'), true);
    counts.decrement('a');
    counts.decrement('b');
    counts.decrement('b');
    counts.decrement('never');
    assert.equal(counts.get('a'), 1);
    assert.equal(counts.get('b'), 0);
    assert.equal(counts.has('b'), false);
    assert.equal(counts.get('never'), 0);
    counts.increment('b');
    assert.equal(counts.get('b'), 1, 'a name back from zero counts from zero');
  });

  it('live counts survive the batch drop of zero counts, and what is kept stays bounded', () => {
    const counts = new Counts();
    for (let i = 0; i < 5; i++) counts.increment('live');
    counts.increment('half');
    for (let i = 0; i < 10_000; i++) {
      const name = `gone-${i}`;
      counts.increment(name);
      counts.increment(name);
      counts.decrement(name);
      counts.decrement(name);
      // A name that comes back while it sits at zero is live again, not dropped with the zeros.
      if (i === 100) counts.increment('gone-50');
    }
    assert.equal(counts.get('live'), 5);
    assert.equal(counts.get('half'), 1);
    assert.equal(counts.get('gone-50'), 1);
    assert.equal(counts.get('gone-9999'), 0);
    assert.ok(counts.held <= 3 + 512, `kept ${counts.held} names for 3 live ones`);
  });
});

describe('the in-flight cap across thousands of callers', () => {
  it('after 3,000 callers each ran a request, a burst of one caller is still capped at 8', async () => {
    const idem = createIdempotency({ store: memoryStore(quiet), maxInFlightPerPrincipal: 8, ...quiet });
    const post = (principal: string) => ({
      method: 'POST',
      path: '/orders',
      headers: { 'idempotency-key': randomUUID(), authorization: principal },
      body: EMPTY,
    });
    const finish = async (decisions: Decision[]) => {
      for (const d of decisions)
        if (d.kind === 'execute') await d.commit({ status: 201, headers: [], body: EMPTY });
    };
    // One caller holds 3 places across every batch drop of the others' zero counts.
    const held = await Promise.all(Array.from({ length: 3 }, () => idem.begin(post('Bearer holder'))));
    for (let i = 0; i < 3_000; i++) await finish([await idem.begin(post(`Bearer caller-${i}`))]);
    const burst = await Promise.all(Array.from({ length: 8 }, () => idem.begin(post('Bearer holder'))));
    assert.equal(burst.filter((d) => d.kind === 'execute').length, 5, '3 places still held, 5 left');
    await finish([...held, ...burst]);
    const again = await Promise.all(Array.from({ length: 12 }, () => idem.begin(post('Bearer holder'))));
    assert.equal(again.filter((d) => d.kind === 'execute').length, 8);
    await finish(again);
    await idem.close();
  });
});
