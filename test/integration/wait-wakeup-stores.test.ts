import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import { waitCadence } from '../../src/core/waiters.js';
import { createIdempotency, type IdempotencyStore } from '../../src/index.js';
import { migrate, postgresStore } from '../../src/stores/postgres.js';
import { redisStore } from '../../src/stores/redis.js';
import { countingStore } from '../../src/testing/index.js';
import { request, response } from '../support/engine-helpers.js';
import { dropTable, postgresPool, randomTable } from '../support/postgres-service.js';
import { ioredisClient, nodeRedisClient, randomPrefix } from '../support/redis-service.js';

/*
 * Wait mode across processes: two engines, each with its own store instance on its own
 * connection(s), share one database. The duplicate waits in engine two; engine one completes.
 * A store that notifies wakes the duplicate with one claim; without notifications it polls.
 * (A Redis Cluster publishes nothing: its waiters poll as before.)
 */

const SECRET = 'wait-wakeup-test-secret-0123456789abcdef';
const quiet = { onWarning() {} };

async function until(check: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(2);
  }
}

function answeredWithin<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} was not answered within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/**
 * Engine one runs the first request and holds it for `holdMs`; engine two's duplicate waits.
 * Returns the duplicate's answer and how many store calls engine two made before and after
 * engine one's completion.
 */
async function waitAcrossEngines(
  first: IdempotencyStore,
  second: IdempotencyStore,
  holdMs = 400,
  transactional = false,
) {
  const one = createIdempotency({ store: first, secret: SECRET, transactional, ...quiet });
  const spy = countingStore(second);
  const two = createIdempotency({ store: spy.store, secret: SECRET, wait: 5_000, ...quiet });
  const key = `wake-${randomUUID()}`;
  try {
    const running = await one.begin(request({ key }));
    assert.equal(running.kind, 'execute');
    const duplicate = two.begin(request({ key }));
    await until(() => spy.calls() >= 1, "the duplicate's first claim");
    await delay(holdMs);
    const callsBefore = spy.calls();
    await running.commit(response(201, '{"charged":true}'));
    const answer = await answeredWithin(duplicate, 5_000, 'the waiting duplicate');
    return { answer, callsBefore, callsAfter: spy.calls() - callsBefore };
  } finally {
    await one.close();
    await two.close();
  }
}

// The waiters' safety-net poll is pushed out of reach: a waiter that expects a notification
// and is answered within the test was woken, not polled.
const savedCadence = { ...waitCadence };
before(() => {
  waitCadence.watchedFirstMs = 60_000;
  waitCadence.watchedMaxMs = 60_000;
});
after(() => Object.assign(waitCadence, savedCadence));

describe('wait wake-ups across processes: PostgreSQL LISTEN/NOTIFY', () => {
  const table = randomTable('wakeup');
  let poolOne: pg.Pool;
  let poolTwo: pg.Pool;
  before(async () => {
    poolOne = await postgresPool();
    poolTwo = await postgresPool();
    await migrate({ pool: poolOne, table });
  });
  after(async () => {
    await dropTable(poolOne, table);
    await poolOne?.end();
    await poolTwo?.end();
  });

  it("the waiter in engine two is woken by engine one's completion with one claim", async () => {
    const first = postgresStore({ pool: poolOne, table, notify: true });
    const second = postgresStore({ pool: poolTwo, table, notify: true });

    const { answer, callsBefore, callsAfter } = await waitAcrossEngines(first, second);

    assert.equal(answer.kind, 'replay');
    assert.equal(
      answer.kind === 'replay' && Buffer.from(answer.response.body).toString(),
      '{"charged":true}',
    );
    assert.equal(callsAfter, 1, 'one claim after the notification');
    // The first claim, plus at most one when the LISTEN connection came up.
    assert.ok(callsBefore <= 2, `no polling while waiting (${callsBefore} claims)`);
    await second.close();
    assert.equal(poolTwo.totalCount - poolTwo.idleCount, 0, 'close() gave the LISTEN connection back');
    await first.close();
  });

  it('transactional mode: the notification is sent by the COMMIT and wakes the waiter', async () => {
    const first = postgresStore({ pool: poolOne, table, notify: true });
    const second = postgresStore({ pool: poolTwo, table, notify: true });

    const { answer, callsAfter } = await waitAcrossEngines(first, second, 100, true);

    assert.equal(answer.kind, 'replay');
    assert.equal(callsAfter, 1, 'one claim after the notification');
    await first.close();
    await second.close();
  });

  it('negative control: without notify the waiter polls, and still gets the replay', async () => {
    const first = postgresStore({ pool: poolOne, table, notify: true });
    const second = postgresStore({ pool: poolTwo, table });

    const { answer, callsBefore } = await waitAcrossEngines(first, second);

    assert.equal(answer.kind, 'replay');
    assert.ok(callsBefore >= 3, `the waiter polled (${callsBefore} claims while waiting)`);
    await first.close();
    await second.close();
  });

  it('the LISTEN connection is opened again after it was killed, and wakes the next waiter', async () => {
    const first = postgresStore({ pool: poolOne, table, notify: true });
    const second = postgresStore({ pool: poolTwo, table, notify: true });
    await waitAcrossEngines(first, second, 50);
    const killed = await poolOne.query(
      `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
       WHERE query LIKE $1 AND datname = current_database()`,
      [`LISTEN "idemkit_settled_${table}_%`],
    );
    assert.ok(killed.rows.length >= 1, 'the LISTEN session was found');

    // Waits in the second after the loss poll; later ones open the channel again.
    await delay(1_200);
    const { answer, callsAfter } = await waitAcrossEngines(first, second);

    assert.equal(answer.kind, 'replay');
    assert.equal(callsAfter, 1, 'woken through the new LISTEN connection');
    await first.close();
    await second.close();
  });
});

describe('wait wake-ups across processes: Redis pub/sub', () => {
  const clients: { quit(): Promise<unknown> }[] = [];
  after(async () => {
    for (const client of clients) await client.quit().catch(() => {});
  });
  /** Two connections, as two processes would have. */
  async function pair(kind: 'node-redis' | 'ioredis') {
    const make = kind === 'node-redis' ? () => nodeRedisClient() : () => ioredisClient();
    const one = await make();
    const two = await make();
    clients.push(one, two);
    return { one, two };
  }
  const subscribers = async (client: Awaited<ReturnType<typeof ioredisClient>>, channel: string) => {
    const reply = (await client.call('PUBSUB', 'NUMSUB', channel)) as [string, number];
    return Number(reply[1]);
  };

  for (const kind of ['node-redis', 'ioredis'] as const) {
    it(`${kind}: the waiter in engine two is woken by engine one's completion with one claim`, async () => {
      const { one, two } = await pair(kind);
      const prefix = randomPrefix('wakeup');
      const first = redisStore({ client: one, prefix });
      const second = redisStore({ client: two, prefix });

      const { answer, callsBefore, callsAfter } = await waitAcrossEngines(first, second);

      assert.equal(answer.kind, 'replay');
      assert.equal(callsAfter, 1, 'one claim after the message');
      // The first claim, plus at most one when the subscription came up.
      assert.ok(callsBefore <= 2, `no polling while waiting (${callsBefore} claims)`);
      const observer = await ioredisClient();
      clients.push(observer);
      assert.equal(await subscribers(observer, `${prefix}settled`), 1);
      await second.close();
      const deadline = Date.now() + 5_000;
      while ((await subscribers(observer, `${prefix}settled`)) !== 0 && Date.now() < deadline)
        await delay(10);
      assert.equal(await subscribers(observer, `${prefix}settled`), 0, 'close() ended the subscriber');
      await first.close();
    });
  }

  it('negative control: with notify off the waiter polls, and still gets the replay', async () => {
    const { one, two } = await pair('node-redis');
    const prefix = randomPrefix('wakeup');
    const first = redisStore({ client: one, prefix });
    const second = redisStore({ client: two, prefix, notify: false });

    const { answer, callsBefore } = await waitAcrossEngines(first, second);

    assert.equal(answer.kind, 'replay');
    assert.ok(callsBefore >= 3, `the waiter polled (${callsBefore} claims while waiting)`);
    await first.close();
    await second.close();
  });
});
