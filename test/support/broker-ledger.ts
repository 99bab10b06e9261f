import { after, before } from 'node:test';
import type pg from 'pg';
import { createDeduplicator, type Deduplicator, RedeliverLaterError } from '../../src/consumer/index.js';
import { migrate, postgresStore } from '../../src/stores/postgres.js';
import { dropTable, postgresPool, randomTable } from './postgres-service.js';

/*
 * What the broker suites share: a ledger table on PostgreSQL where every applied effect is one
 * row (no unique constraint: a duplicate shows up as a second row), the deduplicator on a
 * PostgreSQL store, and the handler the consumers run, with injected transient failures.
 */

export const BROKER_SECRET = 'broker-suite-secret-0123456789abcdef';

export interface BrokerLedger {
  pool(): pg.Pool;
  /** A fresh deduplicator on its own store table. */
  dedup(): Promise<Deduplicator>;
  /** Applies one message's effect: a ledger row. */
  apply(run: string, id: string): Promise<void>;
  /** Rows per message id of one run. */
  counts(run: string): Promise<Map<string, number>>;
}

export function brokerLedger(prefix: string): BrokerLedger {
  let pool: pg.Pool | undefined;
  const ledger = randomTable(`${prefix}_ledger`);
  const tables: string[] = [];
  const dedups: Deduplicator[] = [];
  before(async () => {
    pool = await postgresPool({ max: 20 });
    await pool.query(`CREATE TABLE "${ledger}" (run text NOT NULL, id text NOT NULL)`);
  });
  after(async () => {
    for (const d of dedups) await d.close();
    if (!pool) return;
    await dropTable(pool, ledger);
    for (const table of tables) await dropTable(pool, table);
    await pool.end();
  });
  const open = () => {
    if (!pool) throw new Error('brokerLedger: use it between before() and after()');
    return pool;
  };
  return {
    pool: open,
    async dedup() {
      const table = randomTable(prefix);
      tables.push(table);
      await migrate({ pool: open(), table });
      const d = createDeduplicator({
        store: postgresStore({ pool: open(), table, onWarning() {} }),
        secret: BROKER_SECRET,
        retentionMs: 600_000,
        leaseMs: 5_000,
      });
      dedups.push(d);
      return d;
    },
    async apply(run, id) {
      await open().query(`INSERT INTO "${ledger}" (run, id) VALUES ($1, $2)`, [run, id]);
    },
    async counts(run) {
      const { rows } = await open().query<{ id: string; n: string }>(
        `SELECT id, count(*) AS n FROM "${ledger}" WHERE run = $1 GROUP BY id`,
        [run],
      );
      return new Map(rows.map((r) => [r.id, Number(r.n)]));
    },
  };
}

/** What the consumer does with a delivery after the handler: ack it, or put it back. */
export type Verdict = 'ack' | 'requeue';

/**
 * The consumer's handler: apply the message's effect, through the deduplicator when there is
 * one. Every message whose number is a multiple of 7 fails on its first attempt (a transient
 * error), so failed handlers must not be marked processed. A duplicate that finds the first
 * still running is put back.
 */
export function makeHandler(ledger: BrokerLedger, run: string, dedup: Deduplicator | undefined) {
  const failedOnce = new Set<string>();
  const effect = async (id: string) => {
    if (Number(id.split('-').pop()) % 7 === 0 && !failedOnce.has(id)) {
      failedOnce.add(id);
      throw new Error('transient failure');
    }
    await ledger.apply(run, id);
  };
  return async function handleMessage(id: string): Promise<Verdict> {
    try {
      if (dedup) await dedup.once({ source: run, id }, () => effect(id));
      else await effect(id);
      return 'ack';
    } catch (error) {
      if (error instanceof RedeliverLaterError || (error as Error).message === 'transient failure') {
        return 'requeue';
      }
      throw error;
    }
  };
}

/** Polls `done` every 50 ms for at most `ms`; true when it held. */
export async function eventually(done: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await done()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return done();
}
