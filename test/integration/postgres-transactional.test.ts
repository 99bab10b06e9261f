import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { createIdempotency } from '../../src/index.js';
import { migrate, type PostgresTransactionClient, postgresStore } from '../../src/stores/postgres.js';
import { isTransactionalStore } from '../../src/stores/types.js';
import { request, response } from '../support/engine-helpers.js';
import { postgresPool, randomTable } from '../support/postgres-service.js';

/*
 * Transactional mode on the real server (docs/guarantees.md F1, F12): the handler's writes through
 * ctx.transaction commit together with the stored result, or not at all.
 */

const secret = 'transactional-test-secret-0123456789';
let pool: pg.Pool;
const table = randomTable('txn');
const ledger = randomTable('ledger');

before(async () => {
  pool = await postgresPool();
  await migrate({ pool, table });
  await pool.query(`CREATE TABLE "${ledger}" (key text NOT NULL, note text NOT NULL)`);
});
after(async () => {
  await pool?.query(`DROP TABLE IF EXISTS "${table}"`);
  await pool?.query(`DROP TABLE IF EXISTS "${ledger}"`);
  await pool?.end();
});

const rows = async (key: string) =>
  (await pool.query(`SELECT note FROM "${ledger}" WHERE key = $1`, [key])).rows.map(
    (r: { note: string }) => r.note,
  );
const tx = (ctx: { transaction?: unknown }) => ctx.transaction as PostgresTransactionClient;

describe('postgres transactional mode', () => {
  const store = () => postgresStore({ pool, table, onWarning() {} });
  const idem = () =>
    createIdempotency({ store: store(), secret, transactional: true, sweepIntervalMs: 0, onWarning() {} });

  it('is offered only with a pool that can connect()', () => {
    assert.equal(isTransactionalStore(store()), true);
    assert.equal(
      isTransactionalStore(postgresStore({ pool: { query: pool.query.bind(pool) }, table })),
      false,
    );
  });

  it("the handler's write commits with the result; the retry replays and writes nothing", async () => {
    const engine = idem();
    const key = `k-${Math.random()}`;
    const d = await engine.begin(request({ key }));
    assert.equal(d.kind, 'execute');

    await tx(d.ctx).query(`INSERT INTO "${ledger}" VALUES ($1, 'charged')`, [key]);
    const done = await d.commit(response());

    assert.deepEqual([done.disposition, done.durable], ['store', true]);
    assert.deepEqual(await rows(key), ['charged']);
    assert.equal((await engine.begin(request({ key }))).kind, 'replay');
    await engine.close();
  });

  it('a handler that throws rolls its write back and frees the key; the retry runs once', async () => {
    const engine = idem();
    const key = `k-${Math.random()}`;
    const first = await engine.begin(request({ key }));
    assert.equal(first.kind, 'execute');
    await tx(first.ctx).query(`INSERT INTO "${ledger}" VALUES ($1, 'first')`, [key]);

    await first.abort(new Error('boom'));
    const retry = await engine.begin(request({ key }));

    assert.deepEqual(await rows(key), []);
    assert.equal(retry.kind, 'execute');
    await tx(retry.ctx).query(`INSERT INTO "${ledger}" VALUES ($1, 'retry')`, [key]);
    await retry.commit(response());
    assert.deepEqual(await rows(key), ['retry']);
    await engine.close();
  });

  it("a stale owner's CAS fails at commit: its writes roll back and it gets lease-lost", async () => {
    const engine = idem();
    const key = `k-${Math.random()}`;
    const d = await engine.begin(request({ key }));
    assert.equal(d.kind, 'execute');
    await tx(d.ctx).query(`INSERT INTO "${ledger}" VALUES ($1, 'stale')`, [key]);
    // Another owner took the record over meanwhile (as after a lapsed lease).
    await pool.query(
      `UPDATE "${table}" SET owner_token = 'someone-else', generation = generation + 1 WHERE key = $1`,
      [d.key],
    );

    const done = await d.commit(response());

    assert.equal(done.disposition, 'lease-lost');
    assert.equal(done.response.status, 409);
    assert.deepEqual(await rows(key), []);
    await engine.close();
  });

  it('a failed statement inside the handler makes the COMMIT fail: nothing applied, key released', async () => {
    const engine = idem();
    const key = `k-${Math.random()}`;
    const d = await engine.begin(request({ key }));
    assert.equal(d.kind, 'execute');
    await tx(d.ctx).query(`INSERT INTO "${ledger}" VALUES ($1, 'half')`, [key]);
    await assert.rejects(tx(d.ctx).query('SELECT 1/0'));

    const done = await d.commit(response());

    assert.equal(done.response.status, 503);
    assert.deepEqual(await rows(key), []);
    assert.equal((await store().get(d.key))?.state, 'released');
    await engine.close();
  });

  it('heartbeats and duplicates do not queue behind a running handler transaction', async () => {
    const engine = idem();
    const key = `k-${Math.random()}`;
    const d = await engine.begin(request({ key }));
    assert.equal(d.kind, 'execute');
    await tx(d.ctx).query(`INSERT INTO "${ledger}" VALUES ($1, 'slow')`, [key]);
    const started = performance.now();

    const duplicate = await engine.begin(request({ key }));

    assert.equal(duplicate.kind, 'reject');
    assert.ok(performance.now() - started < 500);
    await d.commit(response());
    await engine.close();
  });
});
