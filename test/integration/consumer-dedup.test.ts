import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createDeduplicator, KeyReusedError, RedeliverLaterError } from '../../src/consumer/index.js';
import { createIdempotency } from '../../src/index.js';
import { OPERATION_SECRET, operationStores } from '../support/operation-stores.js';

/*
 * createDeduplicator().once() on each store: once per (source, id), failures not marked
 * processed, concurrent duplicates told to come back, sources apart, and a redelivery storm
 * whose ledger counts every effect once (negative control: without once() it does not).
 */

const stores = operationStores('consumer');

function deferred() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/** Deliveries of `messages` ids, each 1–3 times, shuffled (a broker redelivering). */
function deliveries(messages: number, seed = 7): string[] {
  let state = seed;
  const random = () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const list: string[] = [];
  for (let i = 0; i < messages; i++) {
    const copies = 1 + Math.floor(random() * 3);
    for (let c = 0; c < copies; c++) list.push(`msg-${i}`);
  }
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [list[i], list[j]] = [list[j] as string, list[i] as string];
  }
  return list;
}

/** Consumers pull deliveries concurrently; a RedeliverLaterError puts the delivery back. */
async function consume(
  queue: string[],
  workers: number,
  handle: (id: string) => Promise<void>,
): Promise<number> {
  let redelivered = 0;
  const worker = async () => {
    for (let guard = 0; guard < 10_000; guard++) {
      const id = queue.shift();
      if (id === undefined) return;
      try {
        await handle(id);
      } catch (error) {
        if (!(error instanceof RedeliverLaterError)) throw error;
        redelivered++;
        queue.push(id);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  return redelivered;
}

describe('negative control: a consumer without the deduplicator', () => {
  it('applies redelivered messages more than once', async () => {
    const ledger = new Map<string, number>();
    await consume(deliveries(50), 4, async (id) => {
      await new Promise((resolve) => setImmediate(resolve));
      ledger.set(id, (ledger.get(id) ?? 0) + 1);
    });
    const duplicates = [...ledger.values()].filter((n) => n > 1).length;
    assert.ok(duplicates > 0, 'the redelivery storm has duplicates to catch');
  });
});

for (const { name, make } of stores) {
  describe(`createDeduplicator().once() on the ${name} store`, () => {
    const dedup = async (extra: Record<string, unknown> = {}) =>
      createDeduplicator({ store: await make(), secret: OPERATION_SECRET, retentionMs: 60_000, ...extra });

    it('runs fn once per (source, id); duplicates get the first result', async () => {
      const d = await dedup();
      let runs = 0;
      const first = await d.once({ source: 'stripe', id: 'evt_1' }, () => ({ order: ++runs }));
      const again = await d.once({ source: 'stripe', id: 'evt_1' }, () => ({ order: ++runs }));
      assert.deepEqual(first, { status: 'processed', result: { order: 1 } });
      assert.deepEqual(again, { status: 'duplicate', result: { order: 1 } });
      assert.equal(runs, 1);
      await d.close();
    });

    it('a failed handler is not marked processed: the redelivery runs it', async () => {
      const d = await dedup();
      let runs = 0;
      await assert.rejects(
        d.once({ source: 'orders', id: 'm1' }, () => {
          runs++;
          throw new Error('database down');
        }),
        /database down/,
      );
      const retried = await d.once({ source: 'orders', id: 'm1' }, () => ++runs);
      assert.deepEqual(retried, { status: 'processed', result: 2 });
      await d.close();
    });

    it('a concurrent duplicate is told to redeliver later, or waits when waitMs is set', async () => {
      const d = await dedup();
      const waiting = createDeduplicator({ engine: d.engine, retentionMs: 60_000, waitMs: 5_000 });
      const gate = deferred();
      const started = deferred();
      let runs = 0;
      const slow = async () => {
        runs++;
        started.open();
        await gate.opened;
        return 'ok';
      };
      const first = d.once({ source: 'q', id: 'c1' }, slow);
      await started.opened;
      await assert.rejects(
        d.once({ source: 'q', id: 'c1' }, slow),
        (error: unknown) => error instanceof RedeliverLaterError && error.retryAfterMs > 0,
      );
      const patient = waiting.once({ source: 'q', id: 'c1' }, slow);
      gate.open();
      assert.deepEqual(await first, { status: 'processed', result: 'ok' });
      assert.deepEqual(await patient, { status: 'duplicate', result: 'ok' });
      assert.equal(runs, 1);
      await d.close();
    });

    it('sources never collide, whatever characters their names and ids share', async () => {
      const d = await dedup();
      const ran: string[] = [];
      const pairs = [
        { source: 'shop:eu', id: 'x' },
        { source: 'shop', id: 'eu:x' },
        { source: 'shop:', id: 'eu:x' },
        { source: 'shop', id: ':eu:x' },
      ];
      for (const p of pairs) await d.once(p, () => ran.push(`${p.source}|${p.id}`));
      for (const p of pairs) await d.once(p, () => ran.push('again'));
      assert.equal(ran.length, pairs.length);
      await d.close();
    });

    it('an id reused with another payload (when payloads are given) is refused', async () => {
      const d = await dedup();
      await d.once({ source: 's', id: 'p1', payload: { amount: 1 } }, () => 1);
      await assert.rejects(
        d.once({ source: 's', id: 'p1', payload: { amount: 2 } }, () => 2),
        KeyReusedError,
      );
      await d.close();
    });

    it('shares an engine (and so its records) with the app: a consumer record never meets an app run()', async () => {
      const idem = createIdempotency({ store: await make(), secret: OPERATION_SECRET, onWarning() {} });
      const d = createDeduplicator({ engine: idem, retentionMs: 60_000 });
      const ran: string[] = [];
      await idem.run({ operation: 'stripe', key: 'evt_9' }, () => ran.push('app'));
      await d.once({ source: 'stripe', id: 'evt_9' }, () => ran.push('consumer'));
      assert.deepEqual(ran, ['app', 'consumer']);
      await d.close();
      await idem.close();
    });

    it('a redelivery storm with 4 competing consumers applies every message exactly once', async () => {
      const d = await dedup();
      const ledger = new Map<string, number>();
      const queue = deliveries(60);
      const total = queue.length;
      // Every tenth first attempt fails, as a handler hitting a transient error would.
      const failedOnce = new Set<string>();
      let failures = 0;
      await consume(queue, 4, async (id) => {
        try {
          await d.once({ source: 'orders.created', id }, async () => {
            await new Promise((resolve) => setImmediate(resolve));
            if (Number(id.slice(4)) % 10 === 0 && !failedOnce.has(id)) {
              failedOnce.add(id);
              throw new Error('transient');
            }
            ledger.set(id, (ledger.get(id) ?? 0) + 1);
          });
        } catch (error) {
          if ((error as Error).message !== 'transient') throw error;
          failures++;
          queue.push(id); // nack: the broker redelivers it
        }
      });
      assert.ok(total > 60, 'the storm redelivers');
      assert.ok(failures > 0);
      assert.equal(ledger.size, 60);
      assert.deepEqual(
        [...ledger.values()].filter((n) => n !== 1),
        [],
      );
      await d.close();
    });
  });
}
