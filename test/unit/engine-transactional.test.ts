import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createIdempotency,
  IdempotencyConfigError,
  type IdempotencyStore,
  memoryStore,
  type StoreTransaction,
  type TransactionalStore,
} from '../../src/index.js';

import { manualClock, request, response } from '../support/engine-helpers.js';

const quiet = { onWarning() {} };

/**
 * The real memory store plus a transaction that buffers the handler's rows and applies them only
 * when the completion's CAS succeeds: the sequencing a transactional store gives the engine.
 */
function transactionalMemory(store: IdempotencyStore, commitFault?: 'throw' | 'unknown') {
  const rows: string[] = [];
  const tx: TransactionalStore<{ insert(row: string): void }> = {
    ...store,
    async beginTransaction() {
      const pending: string[] = [];
      let open = true;
      const transaction: StoreTransaction<{ insert(row: string): void }> = {
        client: { insert: (row) => pending.push(row) },
        async commit(request) {
          if (commitFault === 'throw') {
            open = false;
            throw new Error('could not serialize access');
          }
          if (!(await store.complete(request))) {
            open = false;
            return 'lease-lost';
          }
          rows.push(...pending);
          open = false;
          return commitFault === 'unknown' ? 'unknown' : 'committed';
        },
        async rollback() {
          if (open) pending.length = 0;
          open = false;
        },
      };
      return transaction;
    },
  };
  return { store: tx, rows };
}

describe('engine: transactional mode (F1, F12)', () => {
  it("the handler's writes commit with the result; the retry replays and writes nothing", async () => {
    const t = transactionalMemory(memoryStore(quiet));
    const idem = createIdempotency({ store: t.store, transactional: true, ...quiet });
    const d = await idem.begin(request());
    assert.equal(d.kind, 'execute');

    (d.ctx.transaction as { insert(row: string): void }).insert('charge-1');
    const done = await d.commit(response());

    assert.equal(done.disposition, 'store');
    assert.deepEqual(t.rows, ['charge-1']);
    assert.equal((await idem.begin(request())).kind, 'replay');
  });

  it("a stale owner's writes roll back: the CAS fails and the client gets 409 lease-lost", async () => {
    const clock = manualClock();
    const t = transactionalMemory(memoryStore({ clock: clock.now, ...quiet }));
    const idem = createIdempotency({ store: t.store, transactional: true, leaseMs: 1_000, ...quiet });
    const a = await idem.begin(request());
    clock.advance(1_500);
    const b = await idem.begin(request());
    assert.equal(a.kind, 'execute');
    assert.equal(b.kind, 'execute');

    (b.ctx.transaction as { insert(row: string): void }).insert('by-B');
    await b.commit(response());
    (a.ctx.transaction as { insert(row: string): void }).insert('by-A');
    const stale = await a.commit(response());

    assert.equal(stale.response.status, 409);
    assert.deepEqual(t.rows, ['by-B']);
  });

  it('a failed COMMIT answers 503 and frees the key: the retry executes once', async () => {
    const inner = memoryStore(quiet);
    const failing = transactionalMemory(inner, 'throw');
    const idem = createIdempotency({ store: failing.store, transactional: true, ...quiet });
    const d = await idem.begin(request());
    assert.equal(d.kind, 'execute');

    const result = await d.commit(response());

    assert.equal(result.response.status, 503);
    assert.deepEqual(failing.rows, []);
    const healthy = createIdempotency({
      store: transactionalMemory(inner).store,
      transactional: true,
      ...quiet,
    });
    assert.equal((await healthy.begin(request())).kind, 'execute');
  });

  it('a COMMIT whose answer was lost gives 503 outcome-unknown; the retry then replays', async () => {
    const t = transactionalMemory(memoryStore(quiet), 'unknown');
    const idem = createIdempotency({ store: t.store, transactional: true, ...quiet });
    const d = await idem.begin(request());
    assert.equal(d.kind, 'execute');

    const result = await d.commit(response());

    assert.equal(result.response.status, 503);
    assert.match(Buffer.from(result.response.body).toString(), /outcome-unknown/);
    assert.equal((await idem.begin(request())).kind, 'replay');
  });

  it('a throwing handler rolls its writes back and releases the key', async () => {
    const t = transactionalMemory(memoryStore(quiet));
    const idem = createIdempotency({ store: t.store, transactional: true, ...quiet });
    const d = await idem.begin(request());
    assert.equal(d.kind, 'execute');

    (d.ctx.transaction as { insert(row: string): void }).insert('half-done');
    await d.abort(new Error('constraint violated'));

    assert.deepEqual(t.rows, []);
    assert.equal((await idem.begin(request())).kind, 'execute');
  });

  it('transactional: true on a store without transactions is a configuration error', () => {
    assert.throws(
      () => createIdempotency({ store: memoryStore(quiet), transactional: true, ...quiet }),
      IdempotencyConfigError,
    );
  });
});
