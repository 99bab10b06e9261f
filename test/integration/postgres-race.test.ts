import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type pg from 'pg';
import { migrate } from '../../src/stores/postgres.js';
import { postgresPool, randomTable } from '../support/postgres-service.js';
import { runWorkers, summarize } from '../support/redis-postgres-race.js';

// 4 processes × the same 10,000 keys on PostgreSQL: exactly 10,000 acquired, each once, 0 errors.
const KEYS = 10_000;
const table = randomTable('race');
let pool: pg.Pool;

before(async () => {
  pool = await postgresPool();
  await migrate({ pool, table });
});
after(async () => {
  await pool?.query(`DROP TABLE IF EXISTS "${table}"`);
  await pool?.end();
});

it('4 processes racing on 10,000 keys: each key acquired exactly once, no errors', async () => {
  const run = `race-${Date.now()}`;

  const results = await runWorkers(
    './postgres-race-worker.ts',
    [1, 2, 3, 4].map((seed) => [table, run, String(KEYS), String(seed)]),
  );

  const s = summarize(results, KEYS);
  console.log(`# postgres race: ${s.acquired} acquired (${s.perWorker}), ${s.errors.length} errors`);
  assert.deepEqual(s.errors, []);
  assert.deepEqual(
    { acquired: s.acquired, twice: s.twice, missing: s.missing },
    { acquired: KEYS, twice: 0, missing: 0 },
  );
  const rows = await pool.query(`SELECT count(*)::int AS n, max(generation)::int AS g FROM "${table}"`);
  assert.deepEqual(rows.rows[0], { n: KEYS, g: 1 });
});
