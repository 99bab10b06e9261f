// maxInFlightPerPrincipal was checked before the claim and counted only once the claim was
// acquired, so requests that arrived together all passed the check: 32 simultaneous requests of
// one principal were all admitted under a cap of 8. The place is now taken at admission and given
// back on every path that does not run; these tests also show that no path keeps a place.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { createIdempotency, type Decision, type IdempotencyStore, memoryStore } from '../../src/index.js';

const quiet = { onWarning() {} };
const EMPTY = new Uint8Array(0);

function post(key: string, principal = 'Bearer flooder') {
  return {
    method: 'POST',
    path: '/orders',
    headers: { 'idempotency-key': key, authorization: principal },
    body: EMPTY,
  };
}

async function finish(decisions: Decision[]): Promise<void> {
  for (const d of decisions)
    if (d.kind === 'execute') await d.commit({ status: 201, headers: [], body: EMPTY });
}

describe('maxInFlightPerPrincipal holds for a burst', () => {
  it('32 simultaneous begin() of one principal: 8 run, 24 get 429 capacity; another principal is admitted', async () => {
    const idem = createIdempotency({ store: memoryStore(quiet), maxInFlightPerPrincipal: 8, ...quiet });
    const burst = Array.from({ length: 32 }, () => idem.begin(post(randomUUID())));
    const other = idem.begin(post(randomUUID(), 'Bearer someone-else'));
    const decisions = await Promise.all(burst);
    assert.equal(decisions.filter((d) => d.kind === 'execute').length, 8);
    assert.ok(decisions.every((d) => d.kind === 'execute' || (d.kind === 'reject' && d.code === 'capacity')));
    const theirs = await other;
    assert.equal(theirs.kind, 'execute', 'the cap is per principal');
    await finish([...decisions, theirs]);
    // Every place came back: a second burst again gets exactly 8.
    const again = await Promise.all(Array.from({ length: 32 }, () => idem.begin(post(randomUUID()))));
    assert.equal(again.filter((d) => d.kind === 'execute').length, 8);
    await finish(again);
    await idem.close();
  });

  it('32 simultaneous run() of one principal: at most 4 run at once', async () => {
    const idem = createIdempotency({ store: memoryStore(quiet), maxInFlightPerPrincipal: 4, ...quiet });
    let running = 0;
    let peak = 0;
    const results = await Promise.allSettled(
      Array.from({ length: 32 }, (_, i) =>
        idem.run({ operation: 'charge', key: `k${i}`, principal: 'p', params: { i } }, async () => {
          peak = Math.max(peak, ++running);
          await new Promise((r) => setTimeout(r, 20));
          running--;
          return i;
        }),
      ),
    );
    assert.equal(peak, 4);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 4);
    for (const r of results)
      if (r.status === 'rejected') assert.equal((r.reason as { code?: string }).code, 'capacity');
    await idem.close();
  });

  it('replays, conflicts, mismatches and store failures give their place back', async () => {
    let failClaims = false;
    const inner = memoryStore(quiet);
    const store: IdempotencyStore = Object.create(inner, {
      claim: {
        value: (request: Parameters<IdempotencyStore['claim']>[0]) =>
          failClaims ? Promise.reject(new Error('store down')) : inner.claim(request),
      },
    });
    const idem = createIdempotency({ store, maxInFlightPerPrincipal: 2, wait: false, ...quiet });
    const first = await idem.begin(post('key-1'));
    assert.equal(first.kind, 'execute');
    await finish([first]);
    // Replays and refusals must not keep a place, or the principal's next new keys get 429.
    for (let i = 0; i < 5; i++) assert.equal((await idem.begin(post('key-1'))).kind, 'replay');
    const mismatch = await idem.begin({ ...post('key-1'), body: new Uint8Array([1]) });
    assert.equal(mismatch.kind === 'reject' && mismatch.code, 'key-reused');
    const holder = await idem.begin(post('key-2'));
    assert.equal(holder.kind, 'execute');
    for (let i = 0; i < 3; i++) {
      const dup = await idem.begin(post('key-2'));
      assert.equal(dup.kind === 'reject' && dup.code, 'in-progress');
    }
    const second = await idem.begin(post('key-3'));
    assert.equal(second.kind, 'execute', 'the in-progress refusals gave their places back');
    const third = await idem.begin(post('key-4'));
    assert.equal(third.kind === 'reject' && third.code, 'capacity', 'two run: the cap of 2 is reached');
    await finish([holder, second]);
    failClaims = true;
    for (let i = 0; i < 3; i++) {
      const down = await idem.begin(post(randomUUID()));
      assert.equal(down.kind === 'reject' && down.code, 'store-unavailable');
    }
    failClaims = false;
    const next = await Promise.all([idem.begin(post('key-5')), idem.begin(post('key-6'))]);
    assert.deepEqual(
      next.map((d) => d.kind),
      ['execute', 'execute'],
      'no refused request kept a place',
    );
    await finish(next);
    await idem.close();
  });
});
