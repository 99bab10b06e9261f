import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { createIdempotency } from '../../src/index.js';
import { migrate, postgresStore } from '../../src/stores/postgres.js';
import { postgresPool, randomTable } from '../support/postgres-service.js';
import {
  chargeHandler,
  createEffectTable,
  effectRows,
  payRequest,
  recordKeyOf,
  TXN_SECRET,
} from '../support/postgres-txn.js';
import { spawnTxnChild, type TxnChild } from '../support/postgres-txn-process.js';
import { eventually } from '../support/redis-postgres-cases.js';

/*
 * Transactional mode against real process deaths (docs/guarantees.md F1, F12; T14 pg-txn, T24): a
 * child process runs the first attempt and is frozen or killed -9 at a crash point. The effect
 * table is the ledger of applied effects; it must end with exactly one row per key.
 */

const LEASE_MS = 1_500;
/**
 * A duplicate blocked by the frozen owner's row lock is answered once the claim's lock_timeout
 * (200 ms) ends the wait; an unbounded wait would run into the store's queryTimeoutMs (2 s).
 */
const BOUND_MS = 1_500;
let pool: pg.Pool;
const table = randomTable('txncrash');
const effects = randomTable('txncrash_fx');
const children: TxnChild[] = [];

before(async () => {
  pool = await postgresPool();
  await migrate({ pool, table });
  await createEffectTable(pool, effects);
});
after(async () => {
  for (const child of children) await child.kill9();
  await pool?.query(`DROP TABLE IF EXISTS "${table}"`);
  await pool?.query(`DROP TABLE IF EXISTS "${effects}"`);
  await pool?.end();
});

const store = postgresStore({
  pool: { query: (c) => pool.query(c), connect: () => pool.connect() },
  table,
  onWarning() {},
});
const engine = () =>
  createIdempotency({
    store,
    secret: TXN_SECRET,
    transactional: true,
    leaseMs: LEASE_MS,
    sweepIntervalMs: 0,
    onWarning() {},
  });

async function start(settings: Record<string, unknown>): Promise<TxnChild> {
  const child = await spawnTxnChild({ table, effects, leaseMs: LEASE_MS, ...settings });
  children.push(child);
  return child;
}

async function timedHandle(key: string, note: string, executions: { count: number }) {
  const started = performance.now();
  const res = await engine().handle(payRequest(key), chargeHandler(effects, note, executions));
  return { res, ms: performance.now() - started };
}

const isProblem = async (res: Response, code: string) =>
  ((await res.clone().json()) as { type?: string }).type === `urn:idemkit:problem:${code}`;

async function backendAlive(pid: number): Promise<boolean> {
  const { rows } = await pool.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
  return rows.length > 0;
}

/** Waits until the record's lease has passed in the database clock. */
async function leaseLapsed(key: string): Promise<void> {
  await eventually('the lease to lapse', async () => {
    const { rows } = await pool.query(
      `SELECT lease_until < floor(extract(epoch FROM clock_timestamp()) * 1000) AS lapsed FROM "${table}" WHERE key = $1`,
      [recordKeyOf(key)],
    );
    return rows[0]?.lapsed === true;
  });
}

describe('transactional mode: crashes and partitions of the owner process', () => {
  it('partitioned between CAS and COMMIT: duplicates get 409 within the bound, even past the lease; after kill -9 the retry executes once', async () => {
    const key = `partition-${Math.random()}`;
    const child = await start({ key, crashAt: 'beforeCommit' });
    const backend = Number(child.reached);
    child.freeze();
    const executions = { count: 0 };

    const duplicate = await timedHandle(key, 'duplicate', executions);
    await leaseLapsed(key);
    const pastLease = await timedHandle(key, 'past-lease', executions);
    await child.kill9();
    await eventually('the server to end the dead backend', async () => !(await backendAlive(backend)));
    const retry = await timedHandle(key, 'retry', executions);
    const replay = await timedHandle(key, 'replay', executions);

    console.log(
      `# frozen owner: duplicate ${duplicate.res.status} in ${Math.round(duplicate.ms)} ms; past the lease ${pastLease.res.status} in ${Math.round(pastLease.ms)} ms`,
    );
    for (const blocked of [duplicate, pastLease]) {
      assert.equal(blocked.res.status, 409);
      assert.ok(await isProblem(blocked.res, 'in-progress'));
      assert.ok(blocked.res.headers.get('retry-after'));
      assert.ok(blocked.ms < BOUND_MS, `took ${Math.round(blocked.ms)} ms`);
    }
    assert.equal(retry.res.status, 201);
    assert.equal(retry.res.headers.get('idempotent-replayed'), 'false');
    assert.equal(replay.res.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(await effectRows(pool, effects, key), ['retry']);
    assert.equal(executions.count, 1);
  });

  it('killed -9 before COMMIT: neither the effect nor the completion survives; within the lease 409, after it the retry executes once', async () => {
    const key = `crash-${Math.random()}`;
    // A longer lease than the others': from the child's claim to the early retry there is a fresh
    // process's handler, a kill -9 and a reap, which a loaded machine can stretch past 1.5 s.
    const child = await start({ key, crashAt: 'beforeCommit', leaseMs: 3_000 });
    const executions = { count: 0 };

    await child.kill9();
    const { rows: held } = await pool.query(`SELECT lease_until FROM "${table}" WHERE key = $1`, [
      recordKeyOf(key),
    ]);
    const early = await timedHandle(key, 'early', executions);
    const { rows: now } = await pool.query(
      'SELECT floor(extract(epoch FROM clock_timestamp()) * 1000) AS now',
    );
    await leaseLapsed(key);
    const retry = await timedHandle(key, 'retry', executions);

    assert.ok(
      Number(now[0]?.now) < Number(held[0]?.lease_until),
      'the early retry was answered within the crashed claim’s lease',
    );
    assert.equal(early.res.status, 409);
    assert.ok(await isProblem(early.res, 'in-progress'));
    assert.equal(retry.res.status, 201);
    assert.deepEqual(await effectRows(pool, effects, key), ['retry']);
    assert.equal(executions.count, 1);
  });

  it('killed -9 after COMMIT, before the response was written: the retry replays at once (T14)', async () => {
    const key = `committed-${Math.random()}`;
    const child = await start({ key, crashAt: 'afterCommit' });
    const executions = { count: 0 };

    await child.kill9();
    const retry = await timedHandle(key, 'retry', executions);

    assert.equal(child.reached, '201');
    assert.equal(retry.res.status, 201);
    assert.equal(retry.res.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(await retry.res.json(), { charged: key, by: 'child' });
    assert.deepEqual(await effectRows(pool, effects, key), ['child']);
    assert.equal(executions.count, 0);
  });

  it('T24: idle_in_transaction_session_timeout ends a frozen owner’s transaction; the retry after the lease executes once', async () => {
    const key = `idle-${Math.random()}`;
    const child = await start({ key, crashAt: 'beforeCommit', idleInTransactionMs: 1_000 });
    const backend = Number(child.reached);
    child.freeze();
    const frozenAt = performance.now();
    const executions = { count: 0 };

    await eventually('the server to end the idle transaction', async () => !(await backendAlive(backend)));
    const endedMs = performance.now() - frozenAt;
    await leaseLapsed(key);
    const retry = await timedHandle(key, 'retry', executions);

    console.log(
      `# idle_in_transaction_session_timeout 1000 ms: orphan ended ${Math.round(endedMs)} ms after the freeze`,
    );
    assert.ok(endedMs < 5_000, `took ${Math.round(endedMs)} ms`);
    assert.equal(retry.res.status, 201);
    assert.deepEqual(await effectRows(pool, effects, key), ['retry']);
    assert.equal(executions.count, 1);
  });
});
