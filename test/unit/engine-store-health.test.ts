import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createIdempotency,
  type IdempotencyStore,
  memoryStore,
  StoreMisconfiguredError,
} from '../../src/index.js';
import { faultyStore, request, response } from '../support/engine-helpers.js';

const quiet = { onWarning() {} };

/** A memory store with a check() that fails until `fix()`, counting its runs. */
function checkedStore() {
  let broken = true;
  let checks = 0;
  const store: IdempotencyStore = {
    ...memoryStore(quiet),
    check() {
      checks++;
      return broken
        ? Promise.reject(new StoreMisconfiguredError('journal_mode is DELETE'))
        : Promise.resolve();
    },
  };
  return {
    store,
    fix: () => {
      broken = false;
    },
    checks: () => checks,
  };
}

describe('engine: storeHealthy() for health endpoints', () => {
  it("runs the store's check() on every probe and shares its state with requests", async () => {
    const checked = checkedStore();
    const idem = createIdempotency({ store: checked.store, sweepIntervalMs: 0, ...quiet });
    try {
      assert.equal(await idem.storeHealthy(), false);
      const refused = await idem.begin(request({ key: 'k1' }));
      assert.equal(refused.kind === 'reject' && refused.code, 'store-misconfigured');

      checked.fix();
      assert.equal(await idem.storeHealthy(), true);
      const runs = checked.checks();
      // Within the 5 s a request waits before checking again, the passing probe already opened the way.
      const d = await idem.begin(request({ key: 'k2' }));
      assert.equal(d.kind, 'execute');
      if (d.kind === 'execute') await d.commit(response());
      assert.equal(checked.checks(), runs, 'the request did not run check() again');

      assert.equal(await idem.storeHealthy(), true);
      assert.equal(checked.checks(), runs + 1, 'every probe checks the store now');
    } finally {
      await idem.close();
    }
  });

  it('reads the store when it has no check(): false while reads fail, true once they work', async () => {
    const faulty = faultyStore(memoryStore(quiet));
    const idem = createIdempotency({ store: faulty.store, sweepIntervalMs: 0, ...quiet });
    try {
      assert.equal(await idem.storeHealthy(), true);
      faulty.fail('get');
      assert.equal(await idem.storeHealthy(), false);
      faulty.heal();
      assert.equal(await idem.storeHealthy(), true);
    } finally {
      await idem.close();
    }
  });

  it('answers false within the store timeout when the store hangs', async () => {
    const faulty = faultyStore(memoryStore(quiet));
    const idem = createIdempotency({
      store: faulty.store,
      storeTimeoutMs: 100,
      sweepIntervalMs: 0,
      ...quiet,
    });
    try {
      faulty.fail('get', 'hang');
      const started = Date.now();
      assert.equal(await idem.storeHealthy(), false);
      assert.ok(Date.now() - started < 1_400, 'answered before the hung read would have');
    } finally {
      await idem.close();
    }
  });
});
