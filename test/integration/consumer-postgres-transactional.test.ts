import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { createDeduplicator } from '../../src/consumer/index.js';
import { createIdempotency } from '../../src/index.js';
import { migrate, type PostgresTransactionClient, postgresStore } from '../../src/stores/postgres.js';
import { postgresPool, randomTable } from '../support/postgres-service.js';

/*
 * The deduplicator on a transactional PostgreSQL engine: the handler's writes through
 * ctx.transaction commit together with the processed record, or not at all.
 */

const secret = 'consumer-transactional-secret-0123456789';
let pool: pg.Pool;
const table = randomTable('ctxn');
const ledger = randomTable('cledger');

before(async () => {
  pool = await postgresPool();
  await migrate({ pool, table });
  await pool.query(`CREATE TABLE "${ledger}" (event text NOT NULL)`);
});
after(async () => {
  await pool?.query(`DROP TABLE IF EXISTS "${table}"`);
  await pool?.query(`DROP TABLE IF EXISTS "${ledger}"`);
  await pool?.end();
});

const count = async (event: string) =>
  Number((await pool.query(`SELECT count(*) AS n FROM "${ledger}" WHERE event = $1`, [event])).rows[0].n);

describe('createDeduplicator on a transactional PostgreSQL engine', () => {
  it("commits the handler's write with the record; a failed handler leaves neither; redeliveries write nothing", async () => {
    const engine = createIdempotency({
      store: postgresStore({ pool, table, onWarning() {} }),
      secret,
      transactional: true,
      sweepIntervalMs: 0,
      onWarning() {},
    });
    const dedup = createDeduplicator({ engine, retentionMs: 60_000 });
    const apply = (event: string, fail: boolean) =>
      dedup.once({ source: 'orders', id: event }, async (ctx) => {
        const client = ctx.transaction as PostgresTransactionClient;
        await client.query(`INSERT INTO "${ledger}" VALUES ($1)`, [event]);
        if (fail) throw new Error('crashed after the write');
        return 'applied';
      });
    await assert.rejects(apply('e1', true), /crashed after the write/);
    assert.equal(await count('e1'), 0, 'the failed attempt left no write behind');
    assert.deepEqual(await apply('e1', false), { status: 'processed', result: 'applied' });
    assert.deepEqual(await apply('e1', false), { status: 'duplicate', result: 'applied' });
    assert.equal(await count('e1'), 1);
    await engine.close();
  });
});
