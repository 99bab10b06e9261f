import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { IdempotencyConfigError, StoreMisconfiguredError } from '../../src/core/errors.js';
import { createIdempotency } from '../../src/index.js';
import { type IsolationLevel, migrate, type PostgresPool, postgresStore } from '../../src/stores/postgres.js';
import { POSTGRES_URL, postgresPool, randomTable } from '../support/postgres-service.js';
import {
  chargeHandler,
  createEffectTable,
  effectRows,
  payRequest,
  TXN_SECRET,
  transactionOf,
} from '../support/postgres-txn.js';

/*
 * The PostgreSQL startup check (docs/guarantees.md, F12): a missing schema is
 * StoreMisconfiguredError; lock_timeout or idle_in_transaction_session_timeout left at 0 is
 * warned about once, and only when the store is used transactionally. The settings are set per
 * connection through the pool's `options`, never on the shared server.
 */

let pool: pg.Pool;
const table = randomTable('check');
const effects = randomTable('check_fx');
const safe: pg.Pool[] = [];

before(async () => {
  pool = await postgresPool();
  await migrate({ pool, table });
  await createEffectTable(pool, effects);
});
after(async () => {
  for (const p of safe) await p.end();
  await pool?.query(`DROP TABLE IF EXISTS "${table}"`);
  await pool?.query(`DROP TABLE IF EXISTS "${effects}"`);
  await pool?.end();
});

/** A pool whose connections carry these settings (as ALTER ROLE … SET would give them). */
async function poolWith(settings: string): Promise<pg.Pool> {
  const p = await postgresPool({ connectionString: POSTGRES_URL, max: 2, options: settings });
  safe.push(p);
  return p;
}

function storeWithWarnings(p: PostgresPool, name = table, isolationLevel?: IsolationLevel) {
  const warnings: string[] = [];
  const store = postgresStore({
    pool: p,
    table: name,
    onWarning: (m) => warnings.push(m),
    ...(isolationLevel ? { isolationLevel } : {}),
  });
  const begin = async () => {
    const tx = await (store.beginTransaction as NonNullable<typeof store.beginTransaction>)({
      key: 'k',
      token: 't',
    });
    await tx.rollback();
  };
  return { store, warnings, begin };
}

describe('postgres check(): transaction settings and schema', () => {
  it('on server defaults (both 0) warns once, naming both settings, when a transaction is begun after check()', async () => {
    const s = storeWithWarnings(pool);

    await s.store.check?.();
    const afterCheck = s.warnings.length;
    await s.begin();
    await s.begin();
    await s.store.check?.();

    assert.equal(afterCheck, 0, 'a store never used transactionally is not nagged');
    assert.equal(s.warnings.length, 1);
    assert.match(s.warnings[0] ?? '', /lock_timeout is 0.*idle_in_transaction_session_timeout is 0/);
    assert.match(s.warnings[0] ?? '', /ALTER ROLE/);
  });

  it('warns at check() when a transaction was begun first', async () => {
    const s = storeWithWarnings(pool);

    await s.begin();
    const beforeCheck = s.warnings.length;
    await s.store.check?.();

    assert.equal(beforeCheck, 0);
    assert.equal(s.warnings.length, 1);
  });

  it('names only the setting that is off, and is silent when both are set', async () => {
    const lockOnly = storeWithWarnings(await poolWith('-c lock_timeout=2s'));
    const both = storeWithWarnings(
      await poolWith('-c lock_timeout=2s -c idle_in_transaction_session_timeout=10s'),
    );

    for (const s of [lockOnly, both]) {
      await s.store.check?.();
      await s.begin();
    }

    assert.equal(lockOnly.warnings.length, 1);
    assert.doesNotMatch(lockOnly.warnings[0] ?? '', /lock_timeout is 0/);
    assert.match(lockOnly.warnings[0] ?? '', /idle_in_transaction_session_timeout is 0/);
    assert.deepEqual(both.warnings, []);
  });

  it('a missing table is still StoreMisconfiguredError naming idemkit migrate, with no warning', async () => {
    const s = storeWithWarnings(pool, randomTable('absent'));

    await s.begin();
    await assert.rejects(
      s.store.check?.() ?? Promise.resolve(),
      (e: unknown) => e instanceof StoreMisconfiguredError && /idemkit migrate/.test(e.message),
    );

    assert.deepEqual(s.warnings, []);
  });

  it('through the engine: a transactional setup warns on its first request, a plain one never', async () => {
    const run = async (transactional: boolean) => {
      const s = storeWithWarnings(pool);
      const engine = createIdempotency({
        store: s.store,
        secret: TXN_SECRET,
        transactional,
        sweepIntervalMs: 0,
        onWarning() {},
      });
      const handler = transactional
        ? chargeHandler(effects, 'check', { count: 0 })
        : async () => Response.json({ ok: true }, { status: 201 });
      for (let i = 0; i < 3; i++) {
        assert.equal((await engine.handle(payRequest(`check-${Math.random()}`), handler)).status, 201);
      }
      return s.warnings.length;
    };

    assert.deepEqual([await run(true), await run(false)], [1, 0]);
  });

  it('the default onWarning is process.emitWarning, as an IdemkitWarning', async () => {
    const store = postgresStore({ pool, table });
    const seen: Error[] = [];
    const listener = (warning: Error) => seen.push(warning);
    process.on('warning', listener);
    try {
      await store.check?.();
      const tx = await (store.beginTransaction as NonNullable<typeof store.beginTransaction>)({
        key: 'k',
        token: 't',
      });
      await tx.rollback();
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', listener);
    }

    assert.equal(seen.filter((w) => w.name === 'IdemkitWarning').length, 1);
  });

  it('warns when transactions would run above READ COMMITTED, unless isolationLevel says read committed', async () => {
    const rr = await poolWith(
      '-c lock_timeout=2s -c idle_in_transaction_session_timeout=10s -c default_transaction_isolation=repeatable\\ read',
    );
    const stricter = storeWithWarnings(rr);
    const pinned = storeWithWarnings(rr, table, 'read committed');

    for (const s of [stricter, pinned]) {
      await s.store.check?.();
      await s.begin();
    }

    assert.equal(stricter.warnings.length, 1);
    assert.match(stricter.warnings[0] ?? '', /transactions run at repeatable read.*isolationLevel/);
    assert.deepEqual(pinned.warnings, []);
    assert.throws(
      () => postgresStore({ pool, isolationLevel: 'snapshot' as IsolationLevel }),
      IdempotencyConfigError,
    );
  });

  it('at repeatable read a handler longer than leaseMs/3 fails its COMMIT (503); isolationLevel read committed fixes it', async () => {
    const rr = await poolWith('-c default_transaction_isolation=repeatable\\ read');
    const run = async (isolationLevel?: IsolationLevel) => {
      const key = `iso-${Math.random()}`;
      const levels: string[] = [];
      const engine = createIdempotency({
        store: storeWithWarnings(rr, table, isolationLevel).store,
        secret: TXN_SECRET,
        transactional: true,
        leaseMs: 300,
        sweepIntervalMs: 0,
        onWarning() {},
      });
      const res = await engine.handle(payRequest(key), async (request, ctx) => {
        const shown = await transactionOf(ctx).query('SHOW transaction_isolation');
        levels.push(String(shown.rows[0]?.transaction_isolation));
        const response = await chargeHandler(effects, 'slow', { count: 0 })(request, ctx);
        // Past two heartbeats (every 100 ms), each committed after this transaction's snapshot.
        await new Promise((resolve) => setTimeout(resolve, 450));
        return response;
      });
      return { status: res.status, level: levels[0], rows: await effectRows(pool, effects, key) };
    };

    const [poolDefault, pinned] = [await run(), await run('read committed')];

    assert.deepEqual(poolDefault, { status: 503, level: 'repeatable read', rows: [] });
    assert.deepEqual(pinned, { status: 201, level: 'read committed', rows: ['slow'] });
  });
});
