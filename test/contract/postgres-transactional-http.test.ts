import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { withIdempotency } from '../../src/adapters/fetch.js';
import type { HandlerContext } from '../../src/core/execution.js';
import type { IdempotencyOptions } from '../../src/index.js';
import { migrate, type PostgresStore, postgresStore } from '../../src/stores/postgres.js';
import { defineHttpContract } from '../../src/testing/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { dropTable, postgresPool, randomTable } from '../support/postgres-service.js';
import { createEffectTable, effectRows, TXN_SECRET, transactionOf } from '../support/postgres-txn.js';
import { eventually } from '../support/redis-postgres-cases.js';

/*
 * Transactional PostgreSQL over HTTP through the fetch adapter: the whole HTTP contract
 * with every execution inside BEGIN … CAS … COMMIT, then T12–T15 style cases whose handler writes
 * an effect row through ctx.transaction. Real server; an unreachable one fails the suite.
 */

const fuzzRuns = Number(process.env.IDEMKIT_SHARED_FUZZ_RUNS ?? 1_000);
let pool: pg.Pool;
const table = randomTable('txnhttp');
const effects = randomTable('txnhttp_fx');
let transactionsBegun = 0;

before(async () => {
  pool = await postgresPool({ max: 20 });
  await migrate({ pool, table });
  await createEffectTable(pool, effects);
});
after(async () => {
  await dropTable(pool, table);
  await dropTable(pool, effects);
  await pool.end();
  // Proves the contract above really ran in transactional mode.
  console.log(`# transactions begun over HTTP: ${transactionsBegun}`);
  assert.ok(transactionsBegun > 50, `only ${transactionsBegun} transactions were begun`);
});

const lazyPool = { query: (c: pg.QueryConfig) => pool.query(c), connect: () => pool.connect() };
const newStore = (): PostgresStore => postgresStore({ pool: lazyPool, table, onWarning() {} });

/** The suite's options with transactional mode on; `begin` is counted. */
function transactional(options: IdempotencyOptions, store: PostgresStore): IdempotencyOptions {
  const begin = store.beginTransaction as NonNullable<PostgresStore['beginTransaction']>;
  return {
    ...options,
    transactional: true,
    // The suite wraps the store in a call counter that knows no beginTransaction: add it back.
    store: {
      ...options.store,
      beginTransaction: (request: { key: string; token: string }) => {
        transactionsBegun++;
        return begin(request);
      },
    } as IdempotencyOptions['store'],
  };
}

// createStore and start run one after the other for each server the suite starts.
const created: PostgresStore[] = [];
defineHttpContract({
  name: 'fetch adapter + transactional postgres store',
  describe,
  it,
  secret: TXN_SECRET,
  fuzzRuns,
  createStore: async () => {
    const store = newStore();
    created.push(store);
    return { store };
  },
  start: ({ app, options }) =>
    serveFetch(
      withIdempotency(
        (req, ctx) => app.fetch(req, ctx),
        transactional(options, created.shift() as PostgresStore),
      ),
    ),
});

/**
 * POST /charge inserts one effect row (noted with x-note) through ctx.transaction, then, by
 * x-mode: none → 201; throw → throws; fail503 → answers 503; x-sleep ms → waits first. Headers,
 * not the query, so every attempt has the same fingerprint, as a client retry does.
 */
async function charge(request: Request, ctx?: HandlerContext): Promise<Response> {
  const header = (name: string) => request.headers.get(name);
  const key = header('idempotency-key') ?? '';
  const note = header('x-note') ?? 'charge';
  await transactionOf(ctx).query(`INSERT INTO "${effects}" (key, note, pid) VALUES ($1, $2, $3)`, [
    key,
    note,
    process.pid,
  ]);
  await new Promise((resolve) => setTimeout(resolve, Number(header('x-sleep') ?? 0)));
  const mode = header('x-mode');
  if (mode === 'throw') throw new Error('card declined after the insert');
  if (mode === 'fail503') return Response.json({ error: 'downstream down' }, { status: 503 });
  return Response.json({ charged: key, note }, { status: 201 });
}

async function serve(overrides: Partial<IdempotencyOptions> = {}, store: PostgresStore = newStore()) {
  const options = { store, secret: TXN_SECRET, transactional: true, sweepIntervalMs: 0, onWarning() {} };
  return serveFetch(withIdempotency(charge, { ...options, ...overrides }));
}

const post = (url: string, key: string, note: string, extra: Record<string, string> = {}) =>
  fetch(`${url}/charge`, {
    method: 'POST',
    headers: {
      'idempotency-key': key,
      'content-type': 'application/json',
      authorization: 'Bearer u',
      'x-note': note,
      ...extra,
    },
    body: '{"amount":1000}',
  });

describe('HTTP on transactional postgres: effects commit with the record, or not at all', () => {
  it('T1-txn the effect and the result commit together; retries replay and write nothing', async () => {
    const s = await serve();
    try {
      const key = randomUUID();
      const first = await post(s.url, key, 'first');
      const replays = [await post(s.url, key, 'r1'), await post(s.url, key, 'r2')];

      assert.equal(first.status, 201);
      const body = await first.text();
      for (const replay of replays) {
        assert.equal(replay.headers.get('idempotent-replayed'), 'true');
        assert.equal(await replay.text(), body);
      }
      assert.deepEqual(await effectRows(pool, effects, key), ['first']);
    } finally {
      await s.close();
    }
  });

  for (const mode of ['throw', 'fail503']) {
    it(`a handler that ${mode === 'throw' ? 'throws' : 'answers 503'} after its insert rolls it back and frees the key; the retry runs once`, async () => {
      const s = await serve();
      try {
        const key = randomUUID();
        const failed = await post(s.url, key, 'failed', { 'x-mode': mode });
        const retry = await post(s.url, key, 'retry');
        const replay = await post(s.url, key, 'again');

        assert.equal(failed.status, mode === 'throw' ? 500 : 503);
        assert.equal(retry.status, 201);
        assert.equal(retry.headers.get('idempotent-replayed'), 'false');
        assert.equal(replay.headers.get('idempotent-replayed'), 'true');
        assert.deepEqual(await effectRows(pool, effects, key), ['retry']);
      } finally {
        await s.close();
      }
    });
  }

  it("T15-txn a stale owner (lease lapsed, heartbeat stalled) gets 409 lease-lost and its effect rolls back; the taker's stands", async () => {
    // Heartbeats that claim success without renewing: a GC pause long enough to lose the lease.
    const real = newStore();
    let claimed: string | undefined;
    const stalled: PostgresStore = {
      ...real,
      heartbeat: async () => true,
      claim: async (request) => {
        const result = await real.claim(request);
        claimed = request.key;
        return result;
      },
    };
    const a = await serve({ leaseMs: 400 }, stalled);
    const b = await serve({ leaseMs: 5_000 });
    try {
      const key = randomUUID();
      let staleSettled = false;
      // The stale handler outlasts its 400 ms lease by far, so the taker comes while it still runs.
      const stale = post(a.url, key, 'stale', { 'x-sleep': '2500' }).finally(() => {
        staleSettled = true;
      });
      // The taker comes once the stale claim's lease has lapsed in the database clock (a fixed
      // sleep from the send raced against a loaded server's claim).
      await eventually('the stale claim', async () => claimed !== undefined);
      await eventually('the stale lease to lapse', async () => {
        const { rows } = await pool.query(
          `SELECT lease_until < floor(extract(epoch FROM clock_timestamp()) * 1000) AS lapsed FROM "${table}" WHERE key = $1`,
          [claimed],
        );
        return rows[0]?.lapsed === true;
      });
      const taker = await post(b.url, key, 'taker');
      const takerBeforeStaleEnded = !staleSettled;
      const staleResponse = await stale;
      const retry = await post(b.url, key, 'retry');

      assert.ok(takerBeforeStaleEnded, 'the taker was answered while the stale handler still ran');
      assert.equal(taker.status, 201);
      assert.equal(staleResponse.status, 409);
      assert.equal(((await staleResponse.json()) as { type: string }).type, 'urn:idemkit:problem:lease-lost');
      assert.equal(retry.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(await effectRows(pool, effects, key), ['taker']);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
