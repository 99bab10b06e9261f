import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import {
  IdempotencyConfigError,
  StoreMisconfiguredError,
  StoreUnavailableError,
} from '../../src/core/errors.js';
import { migrate, postgresStore } from '../../src/stores/postgres.js';
import { defineStoreContract } from '../../src/testing/store-contract.js';
import { postgresPool, randomTable } from '../support/postgres-service.js';
import { defineNetworkedStoreCases, eventually } from '../support/redis-postgres-cases.js';

// One pool and one random table for the file (suites may share the database); dropped at the end.
let pool: pg.Pool;
const table = randomTable('contract');

before(async () => {
  pool = await postgresPool();
  await migrate({ pool, table });
});
after(async () => {
  await pool?.query(`DROP TABLE IF EXISTS "${table}"`);
  await pool?.end();
});

defineStoreContract({
  name: 'postgres',
  describe,
  it,
  create: async () => ({ store: postgresStore({ pool, table }) }),
  modelRuns: 30,
});

defineNetworkedStoreCases({
  name: 'postgres',
  expiresByTtl: false,
  create: async () => ({ store: postgresStore({ pool, table }) }),
});

describe('postgres store', () => {
  const claim = (key: string, token = 't1') => ({
    key,
    fingerprint: 'fp',
    token,
    leaseMs: 60_000,
    retentionMs: 60_000,
  });

  it('check() and claims report a missing table as StoreMisconfiguredError naming idemkit migrate', async () => {
    const store = postgresStore({ pool, table: randomTable('missing') });

    await assert.rejects(
      store.check?.() ?? Promise.resolve(),
      (e: unknown) => e instanceof StoreMisconfiguredError && /idemkit migrate/.test(e.message),
    );
    await assert.rejects(store.claim(claim('k')), StoreMisconfiguredError);
  });

  it('check() resolves on a migrated table, in a schema of its own', async () => {
    const schema = randomTable('schema');
    try {
      await Promise.all([1, 2, 3, 4].map(() => migrate({ pool, schema, table: 'records' })));
      const store = postgresStore({ pool, schema, table: 'records' });

      await store.check?.();
      assert.equal((await store.claim(claim('k'))).outcome, 'acquired');
    } finally {
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
  });

  it('two stores on two tables share a pool without statement-name clashes', async () => {
    const other = randomTable('other');
    await migrate({ pool, table: other });
    try {
      const a = postgresStore({ pool, table });
      const b = postgresStore({ pool, table: other });
      const key = `shared-${Date.now()}`;

      const results = [await a.claim(claim(key)), await b.claim(claim(key))];

      assert.deepEqual(results, [
        { outcome: 'acquired', generation: 1 },
        { outcome: 'acquired', generation: 1 },
      ]);
    } finally {
      await pool.query(`DROP TABLE IF EXISTS "${other}"`);
    }
  });

  it('sweep deletes expired records one batch of `limit` at a time and spares live ones', async () => {
    const own = randomTable('sweep');
    await migrate({ pool, table: own });
    try {
      const store = postgresStore({ pool, table: own });
      for (let i = 0; i < 5; i++) {
        await store.claim(claim(`dead-${i}`));
        await store.release({ key: `dead-${i}`, token: 't1', retentionMs: 1 });
      }
      await store.claim({ ...claim('live'), retentionMs: 1 });
      const { rows } = await pool.query(
        `SELECT max(expires_at)::text AS m FROM "${own}" WHERE state = 'released'`,
      );
      await eventually('the tombstones to expire', async () => {
        const now = await pool.query(`SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::text AS n`);
        return Number(now.rows[0].n) > Number(rows[0].m);
      });

      const batches = [
        await store.sweep(2),
        await store.sweep(2),
        await store.sweep(2),
        await store.sweep(2),
      ];

      assert.deepEqual(batches, [2, 2, 1, 0]);
      assert.equal((await store.get('live'))?.state, 'in_progress');
    } finally {
      await pool.query(`DROP TABLE IF EXISTS "${own}"`);
    }
  });

  it('a query stuck on a row lock fails with StoreUnavailableError at queryTimeoutMs, with no session SET', async () => {
    const store = postgresStore({ pool, table, queryTimeoutMs: 300 });
    const key = `locked-${Date.now()}`;
    await store.claim(claim(key));
    const blocker = await pool.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`SELECT 1 FROM "${table}" WHERE key = $1 FOR UPDATE`, [key]);
      const started = performance.now();

      await assert.rejects(
        store.heartbeat({ key, token: 't1', leaseMs: 1_000, retentionMs: 1_000 }),
        StoreUnavailableError,
      );

      const elapsed = performance.now() - started;
      assert.ok(elapsed < 1_000, `took ${Math.round(elapsed)} ms`);
    } finally {
      await blocker.query('ROLLBACK');
      blocker.release();
    }
    const settings = await pool.query(
      `SELECT current_setting('statement_timeout') AS s, current_setting('lock_timeout') AS l`,
    );
    assert.deepEqual(settings.rows[0], { s: '0', l: '0' });
    assert.equal(await store.heartbeat({ key, token: 't1', leaseMs: 1_000, retentionMs: 1_000 }), true);
  });

  it('close() leaves the pool open, and bad identifiers are refused up front', async () => {
    await postgresStore({ pool, table }).close();

    assert.equal((await pool.query('SELECT 1 AS one')).rows[0].one, 1);
    assert.throws(() => postgresStore({ pool, table: 'x"; DROP TABLE y; --' }), IdempotencyConfigError);
    assert.throws(() => postgresStore({ pool, schema: 'a.b' }), IdempotencyConfigError);
  });
});
