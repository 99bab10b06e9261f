import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { waitCadence } from '../../src/core/waiters.js';
import { createIdempotency, type IdempotencyStore, memoryStore } from '../../src/index.js';
import { countingStore } from '../../src/testing/index.js';
import { request, response } from '../support/engine-helpers.js';

const quiet = { onWarning() {} };

/** Waits (bounded) until `check` holds; fails the test with `what` otherwise. */
async function until(check: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(2);
  }
}

/** Starts the first request (it holds the key) and a duplicate that waits behind it. */
async function firstAndWaitingDuplicate(store: IdempotencyStore, waitMs = 5_000) {
  const spy = countingStore(store);
  const idem = createIdempotency({ store: spy.store, wait: waitMs, ...quiet });
  const first = await idem.begin(request());
  assert.equal(first.kind, 'execute');
  const beforeDuplicate = spy.calls();
  const duplicate = idem.begin(request());
  await until(() => spy.calls() === beforeDuplicate + 1, "the duplicate's first claim");
  return { idem, spy, first, duplicate, beforeDuplicate };
}

/**
 * Two "processes" on one memory store: each view notifies the other's waiters through
 * `onSettled` the way PostgreSQL NOTIFY and Redis pub/sub do, after a settling write lands.
 */
function sharedStoreWithNotifications() {
  const shared = memoryStore(quiet);
  const listeners = new Map<string, Set<() => void>>();
  let subscribed = 0;
  let notifying = true;
  const notify = (key: string) => {
    if (notifying) for (const listener of [...(listeners.get(key) ?? [])]) listener();
  };
  const settling =
    <R extends { key: string }>(write: (r: R) => Promise<boolean>) =>
    async (r: R) => {
      const done = await write.call(shared, r);
      if (done) notify(r.key);
      return done;
    };
  const view = (): IdempotencyStore => ({
    name: shared.name,
    claim: (r) => shared.claim(r),
    heartbeat: (r) => shared.heartbeat(r),
    get: (k) => shared.get(k),
    delete: (k) => shared.delete(k),
    sweep: (n) => shared.sweep(n),
    defaultSecret: () => (shared.defaultSecret as () => Promise<string>)(),
    close: async () => {},
    complete: settling(shared.complete),
    release: settling(shared.release),
    markUncertain: settling(shared.markUncertain),
    onSettled(key, listener) {
      if (!notifying) return undefined;
      const set = listeners.get(key) ?? new Set();
      listeners.set(key, set);
      set.add(listener);
      subscribed++;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        subscribed--;
        set.delete(listener);
        if (set.size === 0) listeners.delete(key);
      };
    },
  });
  return {
    view,
    subscriptions: () => subscribed,
    disableNotifications() {
      notifying = false;
    },
  };
}

describe('engine: waiting duplicates are woken when the first request ends', () => {
  // The safety-net poll of a waiter that expects a wake-up is pushed out of reach: whatever
  // answers these waiters within the test is the wake-up, never a poll.
  const saved = { ...waitCadence };
  before(() => {
    waitCadence.watchedFirstMs = 60_000;
    waitCadence.watchedMaxMs = 60_000;
  });
  after(() => Object.assign(waitCadence, saved));

  it('a duplicate waiting behind a running request is answered with the replay by one more claim, not by polling', async () => {
    const { idem, spy, first, duplicate, beforeDuplicate } = await firstAndWaitingDuplicate(
      memoryStore(quiet),
    );
    assert.equal(first.kind, 'execute');

    // The first request runs long enough for several polls of the old backoff (25, 50, 100 … ms).
    await delay(600);
    assert.equal(spy.calls(), beforeDuplicate + 1, 'the waiting duplicate does not poll the store');
    await first.commit(response(201, '{"id":7}'));
    const answer = await duplicate;

    assert.equal(answer.kind, 'replay');
    assert.equal(Buffer.from(answer.response.body).toString(), '{"id":7}');
    // complete() + the duplicate's one claim after the wake-up.
    assert.equal(spy.calls(), beforeDuplicate + 3);
    await idem.close();
  });

  it('a release wakes the duplicate, which takes the key over and runs', async () => {
    const { idem, spy, first, duplicate, beforeDuplicate } = await firstAndWaitingDuplicate(
      memoryStore(quiet),
    );
    assert.equal(first.kind, 'execute');

    await first.commit(response(503, '{"retry":true}'));
    const answer = await duplicate;

    assert.equal(answer.kind, 'execute');
    // release() + the duplicate's one claim, which acquired.
    assert.equal(spy.calls(), beforeDuplicate + 3);
    assert.equal(answer.kind === 'execute' && answer.ctx.fencingToken, 2);
    if (answer.kind === 'execute') await answer.commit(response());
    await idem.close();
  });

  it('an uncertain outcome wakes the duplicate with 409 outcome-uncertain', async () => {
    const { idem, first, duplicate } = await firstAndWaitingDuplicate(memoryStore(quiet));
    assert.equal(first.kind, 'execute');

    first.ctx.effectsStarted();
    await first.abort(new Error('the payment provider timed out'));
    const answer = await duplicate;

    assert.equal(answer.kind === 'reject' && answer.code, 'outcome-uncertain');
    await idem.close();
  });

  it('the wait deadline still answers 409 in-progress while the first request runs on', async () => {
    const bus = sharedStoreWithNotifications();
    const { idem, first, duplicate } = await firstAndWaitingDuplicate(bus.view(), 300);
    assert.equal(first.kind, 'execute');

    const answer = await duplicate;

    assert.equal(answer.kind === 'reject' && answer.code, 'in-progress');
    assert.equal(bus.subscriptions(), 0, 'the waiter unsubscribed when its deadline passed');
    await first.commit(response());
    await idem.close();
  });

  it('at most 64 duplicates wait per key; the next gets 409 at once, and every waiter is woken', async () => {
    const spy = countingStore(memoryStore(quiet));
    const idem = createIdempotency({ store: spy.store, wait: 5_000, ...quiet });
    const first = await idem.begin(request());
    assert.equal(first.kind, 'execute');
    const waiting = Array.from({ length: 64 }, () => idem.begin(request()));
    await until(() => spy.calls() === 65, 'the 64 waiting claims');

    const extra = await idem.begin(request());
    assert.equal(extra.kind === 'reject' && extra.code, 'in-progress');
    await first.commit(response());
    const answers = await Promise.all(waiting);

    assert.deepEqual(new Set(answers.map((a) => a.kind)), new Set(['replay']));
    // 1 + 64 + 1 claims before the commit, complete(), then one claim per waiter.
    assert.equal(spy.calls(), 66 + 1 + 64);
    await idem.close();
  });

  it("another engine's completion wakes the waiter through the store's notification", async () => {
    const bus = sharedStoreWithNotifications();
    const one = createIdempotency({ store: bus.view(), ...quiet });
    const first = await one.begin(request());
    assert.equal(first.kind, 'execute');
    const spy = countingStore(bus.view());
    const two = createIdempotency({ store: spy.store, wait: 5_000, ...quiet });
    const duplicate = two.begin(request());
    await until(() => spy.calls() === 1, "the duplicate's first claim");

    await delay(300);
    assert.equal(spy.calls(), 1, 'the waiter does not poll while the store will notify it');
    await first.commit(response(201, '{"id":8}'));
    const answer = await duplicate;

    assert.equal(answer.kind, 'replay');
    assert.equal(spy.calls(), 2, 'one claim after the notification');
    assert.equal(bus.subscriptions(), 0);
    await one.close();
    await two.close();
  });

  it('without notifications the waiter in another engine polls, and still gets the replay', async () => {
    const bus = sharedStoreWithNotifications();
    bus.disableNotifications();
    const one = createIdempotency({ store: bus.view(), ...quiet });
    const first = await one.begin(request());
    assert.equal(first.kind, 'execute');
    const spy = countingStore(bus.view());
    const two = createIdempotency({ store: spy.store, wait: 5_000, ...quiet });
    const duplicate = two.begin(request());

    await delay(300);
    await first.commit(response(201, '{"id":9}'));
    const answer = await duplicate;

    assert.equal(answer.kind, 'replay');
    assert.ok(spy.calls() >= 3, `the waiter polled (${spy.calls()} claims)`);
    await one.close();
    await two.close();
  });
});
