import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { createIdempotency } from '../../src/index.js';
import { migrate, type PostgresPool, postgresStore } from '../../src/stores/postgres.js';
import { commitGate } from '../support/postgres-gate.js';
import { POSTGRES_URL, postgresPool, randomTable } from '../support/postgres-service.js';
import {
  chargeHandler,
  createEffectTable,
  effectRows,
  payRequest,
  TXN_SECRET,
} from '../support/postgres-txn.js';

/*
 * docs/guarantees.md F12 / T35–T37 on the real server: a claim blocked on the record's row lock (held
 * by an owner between its completion CAS and COMMIT) waits at most lockTimeoutMs and answers
 * in_progress (409 with Retry-After), never a 503 at the query timeout; a claim that waited
 * through the COMMIT decides from the committed row, never from its older snapshot.
 */

const LOCK_MS = 200;
/** The bound the tests hold the wait to: the lock timeout plus scheduling slack on a busy CI box. */
const BOUND_MS = 1_000;
const quiet = { onWarning() {} };

let pool: pg.Pool;
const table = randomTable('lockwait');
const effects = randomTable('effects');

before(async () => {
  pool = await postgresPool({ max: 10 });
  await migrate({ pool, table });
  await createEffectTable(pool, effects);
});
after(async () => {
  await pool?.query(`DROP TABLE IF EXISTS "${table}"`);
  await pool?.query(`DROP TABLE IF EXISTS "${effects}"`);
  await pool?.end();
});

const store = (p: PostgresPool = pool) => postgresStore({ pool: p, table, lockTimeoutMs: LOCK_MS, ...quiet });
const claim = (key: string, token: string, leaseMs = 60_000) => ({
  key,
  fingerprint: 'fp',
  token,
  leaseMs,
  retentionMs: 60_000,
});
const response = { status: 201, headers: [] as [string, string][], body: Buffer.from('{"ok":1}') };

/** Runs `fn` while another connection holds the record's row lock in an open transaction. */
async function whileLocked<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const holder = await pool.connect();
  try {
    await holder.query('BEGIN');
    await holder.query(`UPDATE "${table}" SET lease_until = lease_until WHERE key = $1`, [key]);
    return await fn();
  } finally {
    await holder.query('ROLLBACK');
    holder.release();
  }
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const value = await fn();
  return [value, performance.now() - started];
}

describe('postgres claim under a held row lock (F12)', () => {
  it('answers in_progress with the record after lockTimeoutMs, and leaks no lock_timeout into the pool', async () => {
    const key = `held-${Math.random()}`;
    await store().claim(claim(key, 'owner'));

    const [result, ms] = await whileLocked(key, () => timed(() => store().claim(claim(key, 'dup'))));

    console.log(`# blocked claim answered in ${Math.round(ms)} ms (lockTimeoutMs ${LOCK_MS})`);
    assert.equal(result.outcome, 'in_progress');
    assert.equal(result.outcome === 'in_progress' && result.record.fingerprint, 'fp');
    assert.ok(ms >= LOCK_MS - 10 && ms < BOUND_MS, `took ${Math.round(ms)} ms`);
    const clients = await Promise.all(Array.from({ length: 10 }, () => pool.connect()));
    const settings = await Promise.all(clients.map((c) => c.query('SHOW lock_timeout')));
    for (const c of clients) c.release();
    assert.deepEqual(new Set(settings.map((s) => s.rows[0].lock_timeout)), new Set(['0']));
  });

  it('never takes over a lapsed lease whose row is locked: the holder may still commit', async () => {
    const key = `lapsed-${Math.random()}`;
    await store().claim(claim(key, 'owner', 1));
    await new Promise((resolve) => setTimeout(resolve, 20));

    const result = await whileLocked(key, () => store().claim(claim(key, 'taker')));

    assert.equal(result.outcome, 'in_progress');
    assert.equal((await store().claim(claim(key, 'taker'))).outcome, 'acquired', 'free once unlocked');
  });

  /** The owner's real transaction, held between its completion CAS and COMMIT. */
  async function heldCommit(key: string) {
    const gate = commitGate(pool);
    const owner = store(gate.pool);
    assert.equal((await owner.claim(claim(key, 'owner'))).outcome, 'acquired');
    const begin = owner.beginTransaction as NonNullable<typeof owner.beginTransaction>;
    const tx = await begin({ key, token: 'owner' });
    const committed = tx.commit({ key, token: 'owner', response, retentionMs: 60_000 });
    await gate.held;
    return { open: gate.open, committed };
  }

  it('a claim that waited through the COMMIT sees the completed row (replay), not its older snapshot', async () => {
    const key = `commit-${Math.random()}`;
    const held = await heldCommit(key);

    const duplicate = store().claim(claim(key, 'dup'));
    setTimeout(held.open, LOCK_MS / 4);
    const result = await duplicate;

    assert.equal(await held.committed, 'committed');
    assert.equal(result.outcome, 'completed');
    assert.equal(result.outcome === 'completed' && result.record.response?.status, 201);
  });

  for (const isolation of ['repeatable read', 'serializable']) {
    it(`at ${isolation} the claim retries its serialization failure and replays (T36)`, async () => {
      const strict = await postgresPool({
        connectionString: POSTGRES_URL,
        max: 2,
        options: `-c default_transaction_isolation=${isolation.replace(' ', '\\ ')}`,
      });
      try {
        const shown = await strict.query('SHOW default_transaction_isolation');
        assert.equal(shown.rows[0].default_transaction_isolation, isolation);
        const key = `iso-${Math.random()}`;
        const held = await heldCommit(key);

        const duplicate = store(strict).claim(claim(key, 'dup'));
        setTimeout(held.open, LOCK_MS / 4);
        const result = await duplicate;

        assert.equal(await held.committed, 'committed');
        assert.equal(result.outcome, 'completed');
      } finally {
        await strict.end();
      }
    });
  }

  it('if the holder rolls back, the waiting claim sees the owner still in progress', async () => {
    const key = `rollback-${Math.random()}`;
    await store().claim(claim(key, 'owner'));
    const holder = await pool.connect();
    await holder.query('BEGIN');
    await holder.query(`UPDATE "${table}" SET state = 'completed', owner_token = NULL WHERE key = $1`, [key]);

    const duplicate = store().claim(claim(key, 'dup'));
    setTimeout(() => {
      holder.query('ROLLBACK').finally(() => holder.release());
    }, LOCK_MS / 4);
    const result = await duplicate;

    assert.equal(result.outcome, 'in_progress');
  });
});

describe('transactional engine: a duplicate blocked by a held COMMIT (F12, T24, T35, T36)', () => {
  const engine = (p: PostgresPool, wait = 0) =>
    createIdempotency({
      store: store(p),
      secret: TXN_SECRET,
      transactional: true,
      sweepIntervalMs: 0,
      wait,
      // The storm queues 50 requests on a pool of 10, each blocked claim holding its connection for
      // lockTimeoutMs: the queue's wait counts against the store timeout (1 s by default), which is
      // not what these tests measure. They hold the answers to 3 × BOUND_MS themselves.
      storeTimeoutMs: 3 * BOUND_MS,
      ...quiet,
    });

  it('gets 409 in-progress with Retry-After within ~1 s; after COMMIT the retry replays; ledger 1', async () => {
    const gate = commitGate(pool);
    const executions = { count: 0 };
    const key = `engine-${Math.random()}`;
    const first = engine(gate.pool).handle(payRequest(key), chargeHandler(effects, 'first', executions));
    await gate.held;

    const [duplicate, ms] = await timed(() =>
      engine(pool).handle(payRequest(key), chargeHandler(effects, 'dup', executions)),
    );
    gate.open();
    const original = await first;
    const retry = await engine(pool).handle(payRequest(key), chargeHandler(effects, 'retry', executions));

    console.log(`# duplicate behind a held COMMIT answered ${duplicate.status} in ${Math.round(ms)} ms`);
    assert.equal(duplicate.status, 409);
    assert.equal(((await duplicate.json()) as { type: string }).type, 'urn:idemkit:problem:in-progress');
    assert.ok(Number(duplicate.headers.get('retry-after')) >= 1);
    assert.ok(ms < BOUND_MS, `took ${Math.round(ms)} ms`);
    assert.equal(original.status, 201);
    assert.equal(retry.status, 201);
    assert.equal(retry.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(await retry.json(), await original.json());
    assert.deepEqual(await effectRows(pool, effects, key), ['first']);
    assert.equal(executions.count, 1);
  });

  it('in wait mode the duplicate is held through the COMMIT and gets the replay', async () => {
    const gate = commitGate(pool);
    const executions = { count: 0 };
    const key = `wait-${Math.random()}`;
    const first = engine(gate.pool).handle(payRequest(key), chargeHandler(effects, 'first', executions));
    await gate.held;

    const duplicate = engine(pool, 3_000).handle(payRequest(key), chargeHandler(effects, 'dup', executions));
    setTimeout(gate.open, 2 * LOCK_MS);
    const [original, held] = await Promise.all([first, duplicate]);

    assert.equal(original.status, 201);
    assert.equal(held.status, 201);
    assert.equal(held.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(await effectRows(pool, effects, key), ['first']);
    assert.equal(executions.count, 1);
  });

  it('a storm of duplicates gets 409s within the bound while other keys keep being served (pool of 10)', async () => {
    const gate = commitGate(pool);
    const executions = { count: 0 };
    const key = `storm-${Math.random()}`;
    const first = engine(gate.pool).handle(payRequest(key), chargeHandler(effects, 'first', executions));
    await gate.held;
    const shared = engine(pool);

    const started = performance.now();
    const timedCall = async (k: string) => {
      const res = await shared.handle(payRequest(k), chargeHandler(effects, 'storm', executions));
      return { status: res.status, ms: performance.now() - started };
    };
    const [dups, others] = await Promise.all([
      Promise.all(Array.from({ length: 30 }, () => timedCall(key))),
      Promise.all(Array.from({ length: 20 }, (_, i) => timedCall(`${key}-other-${i}`))),
    ]);
    gate.open();
    await first;

    const slowest = (xs: { ms: number }[]) => Math.round(Math.max(...xs.map((x) => x.ms)));
    console.log(
      `# 30 duplicates: slowest 409 at ${slowest(dups)} ms; 20 other keys: slowest at ${slowest(others)} ms`,
    );
    assert.deepEqual(new Set(dups.map((d) => d.status)), new Set([409]));
    assert.deepEqual(new Set(others.map((o) => o.status)), new Set([201]));
    assert.ok(slowest(dups) < 3 * BOUND_MS, `slowest duplicate ${slowest(dups)} ms`);
    assert.deepEqual(await effectRows(pool, effects, key), ['first']);
  });
});
