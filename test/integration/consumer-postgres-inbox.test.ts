import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import {
  createPostgresInbox,
  type OnceResult,
  type PostgresInbox,
  RedeliverLaterError,
} from '../../src/consumer/index.js';
import { postgresPool, randomTable } from '../support/postgres-service.js';
import { eventually } from '../support/redis-postgres-cases.js';

/*
 * createPostgresInbox against the real PostgreSQL: the handler's writes through ctx.query and the
 * processed record commit together or not at all. The ledger has a UNIQUE event column, so an
 * effect applied twice would fail loudly as well as show in the count.
 */

const secret = 'consumer-inbox-secret-0123456789abcdef';
const LEASE_MS = 1_500;
let pool: pg.Pool;
const table = randomTable('inbox');
const ledger = randomTable('inbox_ledger');
const plainLedger = randomTable('inbox_plain');
let inbox: PostgresInbox;

before(async () => {
  pool = await postgresPool({ max: 20 });
  inbox = createPostgresInbox({
    pool,
    secret,
    table,
    retentionMs: 60_000,
    leaseMs: LEASE_MS,
    onWarning() {},
  });
  await inbox.migrate();
  await pool.query(`CREATE TABLE "${ledger}" (event text NOT NULL UNIQUE, note text NOT NULL)`);
  await pool.query(`CREATE TABLE "${plainLedger}" (event text NOT NULL)`);
});
after(async () => {
  await inbox?.close();
  for (const name of [table, ledger, plainLedger]) await pool?.query(`DROP TABLE IF EXISTS "${name}"`);
  await pool?.end();
});

const count = async (name: string, event: string) =>
  Number((await pool.query(`SELECT count(*) AS n FROM "${name}" WHERE event = $1`, [event])).rows[0].n);

const apply = (event: string, note = 'applied') =>
  inbox.once({ source: 'orders', id: event }, async (ctx) => {
    await ctx.query(`INSERT INTO "${ledger}" (event, note) VALUES ($1, $2)`, [event, note]);
    return note;
  });

describe('createPostgresInbox', () => {
  it("commits the handler's write with the processed record; a redelivery writes nothing", async () => {
    const event = `evt_${randomUUID()}`;

    const first = await apply(event);
    const again = await apply(event, 'second');

    assert.deepEqual(first, { status: 'processed', result: 'applied' });
    assert.deepEqual(again, { status: 'duplicate', result: 'applied' });
    assert.equal(await count(ledger, event), 1);
    const records = await pool.query(`SELECT count(*) AS n FROM "${table}"`);
    assert.ok(Number(records.rows[0].n) >= 1, 'the processed record is in the inbox table');
  });

  it('a handler that throws after its write leaves neither; the redelivery runs it again', async () => {
    const event = `evt_${randomUUID()}`;

    const failed = inbox.once({ source: 'orders', id: event }, async (ctx) => {
      await ctx.query(`INSERT INTO "${ledger}" (event, note) VALUES ($1, 'doomed')`, [event]);
      const seen = await ctx.query(`SELECT count(*) AS n FROM "${ledger}" WHERE event = $1`, [event]);
      assert.equal(Number(seen.rows[0]?.n), 1, 'the write is visible inside the transaction');
      throw new Error('failed after the write');
    });
    await assert.rejects(failed, /failed after the write/);
    const afterFailure = await count(ledger, event);
    const retried = await apply(event, 'retried');

    assert.equal(afterFailure, 0, 'the failed attempt left no write');
    assert.deepEqual(retried, { status: 'processed', result: 'retried' });
    assert.deepEqual((await pool.query(`SELECT note FROM "${ledger}" WHERE event = $1`, [event])).rows, [
      { note: 'retried' },
    ]);
  });

  it('a connection killed mid-transaction leaves no write and no stranded id: a redelivery applies it once', async () => {
    const event = `evt_${randomUUID()}`;

    const killed = inbox.once({ source: 'orders', id: event }, async (ctx) => {
      await ctx.query(`INSERT INTO "${ledger}" (event, note) VALUES ($1, 'killed')`, [event]);
      const { rows } = await ctx.query('SELECT pg_backend_pid() AS pid');
      await pool.query('SELECT pg_terminate_backend($1)', [rows[0]?.pid]);
      await ctx.query('SELECT 1'); // the connection is gone: this fails
      return 'unreachable';
    });
    await assert.rejects(killed);
    assert.equal(await count(ledger, event), 0, 'the killed transaction wrote nothing');
    // Released at once, or held until the lease lapses: either way a redelivery gets it, bounded.
    let outcome: OnceResult<string> | undefined;
    await eventually(
      'a redelivery to be processed',
      async () => {
        try {
          outcome = await apply(event, 'redelivered');
          return true;
        } catch (error) {
          if (error instanceof RedeliverLaterError) return false;
          throw error;
        }
      },
      LEASE_MS * 5,
    );

    assert.deepEqual(outcome, { status: 'processed', result: 'redelivered' });
    assert.equal(await count(ledger, event), 1);
  });

  it('10 concurrent redeliveries of one id, each retried until done: the effect is applied once', async () => {
    const event = `evt_${randomUUID()}`;
    let runs = 0;
    const deliverUntilDone = async (): Promise<OnceResult<string>> => {
      for (let attempt = 0; attempt < 200; attempt++) {
        try {
          return await inbox.once({ source: 'orders', id: event }, async (ctx) => {
            runs++;
            await ctx.query(`INSERT INTO "${ledger}" (event, note) VALUES ($1, 'concurrent')`, [event]);
            await new Promise((resolve) => setTimeout(resolve, 50)); // hold the id while others arrive
            return 'concurrent';
          });
        } catch (error) {
          if (!(error instanceof RedeliverLaterError)) throw error;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      throw new Error('not done after 200 redeliveries');
    };

    const outcomes = await Promise.all(Array.from({ length: 10 }, deliverUntilDone));

    assert.equal(outcomes.filter((o) => o.status === 'processed').length, 1);
    assert.equal(outcomes.filter((o) => o.status === 'duplicate').length, 9);
    assert.equal(runs, 1);
    assert.equal(await count(ledger, event), 1);
  });

  it('negative control: writes through the pool instead of ctx.query survive a failed handler and repeat', async () => {
    const event = `evt_${randomUUID()}`;
    const outsideTheTransaction = (fail: boolean) =>
      inbox.once({ source: 'orders-plain', id: event }, async () => {
        await pool.query(`INSERT INTO "${plainLedger}" (event) VALUES ($1)`, [event]);
        if (fail) throw new Error('failed after the write');
        return 'done';
      });

    await assert.rejects(outsideTheTransaction(true));
    await outsideTheTransaction(false);

    assert.equal(await count(plainLedger, event), 2, 'the ledger sees a write the inbox could not roll back');
  });
});
