import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createIdempotency,
  type HandlerContext,
  IdempotencyError,
  InFlightError,
  KeyReusedError,
  OutcomeUncertainError,
} from '../../src/index.js';
import { faultyStore } from '../support/engine-helpers.js';
import { OPERATION_SECRET, operationStores } from '../support/operation-stores.js';

/*
 * idem.run(): the operation call on each store. Everything here goes through the same claim,
 * heartbeat and completion as HTTP requests; these tests pin what the operation adds: its scope,
 * its params fingerprint, the stored JSON result and the typed errors.
 */

const stores = operationStores('operation');
const quiet = { onWarning() {}, sweepIntervalMs: 0 };

function deferred() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

for (const { name, make } of stores) {
  describe(`idem.run() on the ${name} store`, () => {
    const engine = async (extra: Record<string, unknown> = {}) =>
      createIdempotency({ store: await make(), secret: OPERATION_SECRET, ...quiet, ...extra });

    it('runs fn once per key and replays its JSON result to every retry', async () => {
      const idem = await engine();
      let runs = 0;
      const call = { operation: 'charge', key: 'k1', params: { amount: 10, currency: 'eur' } };
      const fn = async () => {
        runs++;
        return { id: `ch_${runs}`, amount: 10, at: [1, 2, { nested: true }] };
      };
      const first = await idem.run(call, fn);
      // Params compare as canonical JSON: another key order is the same call.
      const second = await idem.run({ ...call, params: { currency: 'eur', amount: 10 } }, fn);
      assert.equal(runs, 1);
      assert.deepEqual(second, first);
      assert.deepEqual(first, { id: 'ch_1', amount: 10, at: [1, 2, { nested: true }] });
      await idem.close();
    });

    it('replays undefined and null results as they were', async () => {
      const idem = await engine();
      let runs = 0;
      const none = () => {
        runs++;
      };
      assert.equal(await idem.run({ operation: 'o', key: 'u' }, none), undefined);
      assert.equal(await idem.run({ operation: 'o', key: 'u' }, none), undefined);
      assert.equal(
        await idem.run({ operation: 'o', key: 'n' }, () => {
          runs++;
          return null;
        }),
        null,
      );
      assert.equal(
        await idem.run({ operation: 'o', key: 'n' }, () => {
          runs++;
          return null;
        }),
        null,
      );
      assert.equal(runs, 2);
      await idem.close();
    });

    it('refuses the same key with other params (KeyReusedError) and runs nothing', async () => {
      const idem = await engine();
      let runs = 0;
      await idem.run({ operation: 'charge', key: 'k', params: { amount: 10 } }, () => ++runs);
      await assert.rejects(
        idem.run({ operation: 'charge', key: 'k', params: { amount: 11 } }, () => ++runs),
        (error: unknown) => error instanceof KeyReusedError && error.code === 'key-reused',
      );
      assert.equal(runs, 1);
      await idem.close();
    });

    it('keeps scopes apart: operation, key, principal and tenant, with no ambiguous splits', async () => {
      const idem = await engine();
      const seen: string[] = [];
      const calls = [
        { operation: 'shop:eu', key: 'x' },
        { operation: 'shop', key: 'eu:x' },
        { operation: 'shop', key: 'eu:x', principal: 'alice' },
        { operation: 'shop', key: 'eu:x', principal: 'bob' },
        { operation: 'shop', key: 'eu:x', principal: 'bob', tenant: 't1' },
        { operation: 'shop', key: 'eu:x', principal: 't1bob' },
        { operation: 'shop', key: 'eu:x', principal: 'b', tenant: 't1bo' },
      ];
      for (const call of calls) await idem.run(call, () => seen.push(JSON.stringify(call)));
      for (const call of calls) await idem.run(call, () => seen.push(`again ${JSON.stringify(call)}`));
      assert.deepEqual(
        seen,
        calls.map((c) => JSON.stringify(c)),
      );
      await idem.close();
    });

    it('releases the key when fn throws: the error passes through and a retry runs', async () => {
      const idem = await engine();
      let runs = 0;
      const boom = new Error('downstream said no');
      await assert.rejects(
        idem.run({ operation: 'o', key: 'r' }, () => {
          runs++;
          throw boom;
        }),
        (error) => error === boom,
      );
      assert.equal(await idem.run({ operation: 'o', key: 'r' }, () => ++runs), 2);
      assert.equal(await idem.run({ operation: 'o', key: 'r' }, () => ++runs), 2);
      await idem.close();
    });

    it('holds the key as uncertain when fn throws after effectsStarted()', async () => {
      const idem = await engine();
      let runs = 0;
      await assert.rejects(
        idem.run({ operation: 'o', key: 'u' }, (ctx) => {
          runs++;
          ctx.effectsStarted();
          throw new Error('timeout after the charge was sent');
        }),
        /timeout after the charge/,
      );
      await assert.rejects(
        idem.run({ operation: 'o', key: 'u' }, () => ++runs),
        (error: unknown) => error instanceof OutcomeUncertainError && error.code === 'outcome-uncertain',
      );
      assert.equal(runs, 1);
      await idem.close();
    });

    it('a concurrent duplicate gets InFlightError with retryAfterMs, or waits for the result', async () => {
      const idem = await engine();
      const gate = deferred();
      const started = deferred();
      let runs = 0;
      const slow = async () => {
        runs++;
        started.open();
        await gate.opened;
        return 'done';
      };
      const first = idem.run({ operation: 'o', key: 'c' }, slow);
      await started.opened;
      await assert.rejects(
        idem.run({ operation: 'o', key: 'c' }, slow),
        (error: unknown) =>
          error instanceof InFlightError && error.code === 'in-progress' && error.retryAfterMs > 0,
      );
      const waiting = idem.run({ operation: 'o', key: 'c', wait: 5_000 }, slow);
      gate.open();
      assert.equal(await first, 'done');
      assert.equal(await waiting, 'done');
      assert.equal(runs, 1);
      await idem.close();
    });

    it('gives ctx a stable downstreamKey and fencing; a lapsed lease is taken over, the stale run is fenced', async () => {
      const faulty = faultyStore(await make());
      const idem = createIdempotency({ store: faulty.store, secret: OPERATION_SECRET, ...quiet });
      const gate = deferred();
      const started = deferred();
      const contexts: HandlerContext[] = [];
      const call = { operation: 'pay', key: 'lease', params: { n: 1 }, leaseMs: 300 };
      // The first holder stops renewing its lease, as a paused or partitioned process would.
      faulty.fail('heartbeat');
      const stale = idem.run(call, async (ctx) => {
        contexts.push(ctx);
        started.open();
        await gate.opened;
        return 'stale';
      });
      await started.opened;
      let taken: string | undefined;
      for (let i = 0; i < 50 && taken === undefined; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        taken = await idem
          .run(call, (ctx) => {
            contexts.push(ctx);
            return 'fresh';
          })
          .catch((error: unknown) => {
            if (error instanceof InFlightError) return undefined;
            throw error;
          });
      }
      faulty.heal();
      assert.equal(taken, 'fresh');
      const [a, b] = contexts as [HandlerContext, HandlerContext];
      assert.ok(b.fencingToken > a.fencingToken, 'the takeover has a higher fencing token');
      assert.equal(a.downstreamKey(), b.downstreamKey());
      assert.match(a.downstreamKey(), /^idemkit-/);
      // The stale holder learns it at its next failed beat, within about a lease.
      for (let i = 0; i < 40 && !a.signal.aborted; i++)
        await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(a.signal.aborted, true, 'the stale holder was told to stop');
      gate.open();
      await assert.rejects(
        stale,
        (error: unknown) => error instanceof IdempotencyError && error.code === 'lease-lost',
      );
      assert.equal(await idem.run(call, () => 'third'), 'fresh');
      await idem.close();
    });

    it('a result that is not JSON throws, and the key is held uncertain (fn already ran)', async () => {
      const idem = await engine();
      await assert.rejects(
        idem.run({ operation: 'o', key: 'big' }, () => 10n),
        TypeError,
      );
      await assert.rejects(
        idem.run({ operation: 'o', key: 'big' }, () => 1),
        OutcomeUncertainError,
      );
      await idem.close();
    });
  });
}

describe('idem.run() shares the engine with HTTP without sharing records', () => {
  it('an operation and an HTTP request never meet, and negative control: without run() a retry runs twice', async () => {
    const [memory] = stores as [(typeof stores)[number]];
    const idem = createIdempotency({ store: await memory.make(), secret: OPERATION_SECRET, ...quiet });
    let effects = 0;
    const apply = () => ++effects;
    // Without idemkit, a redelivered call applies its effect again: the check below can fail.
    apply();
    apply();
    assert.equal(effects, 2);
    effects = 0;
    await idem.run({ operation: '/pay', key: 'key-1' }, apply);
    const d = await idem.begin({
      method: 'POST',
      path: '/pay',
      headers: { 'idempotency-key': 'key-1', authorization: 'Bearer x', 'content-type': 'application/json' },
      body: Buffer.from('null'),
    });
    assert.equal(d.kind, 'execute');
    if (d.kind === 'execute') await d.abort();
    await idem.run({ operation: '/pay', key: 'key-1' }, apply);
    assert.equal(effects, 1);
    await idem.close();
  });
});

describe('idem.run() and per-request engine options', () => {
  it("a classify() that releases operations: fn's result still reaches the caller, and the next call runs again", async () => {
    const [memory] = stores as [(typeof stores)[number]];
    const seen: string[] = [];
    const idem = createIdempotency({
      store: await memory.make(),
      secret: OPERATION_SECRET,
      ...quiet,
      classify: (_response, request) => {
        seen.push(`${request.method} ${request.path}`);
        return request.method === 'OPERATION' ? 'release' : 'store';
      },
    });
    let runs = 0;
    assert.equal(await idem.run({ operation: 'refresh', key: 'k' }, () => ++runs), 1);
    assert.equal(await idem.run({ operation: 'refresh', key: 'k' }, () => ++runs), 2);
    assert.deepEqual(seen, ['OPERATION refresh', 'OPERATION refresh']);
    await idem.close();
  });
});
