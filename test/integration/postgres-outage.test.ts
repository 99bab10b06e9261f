import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { StoreUnavailableError } from '../../src/core/errors.js';
import { migrate, postgresStore } from '../../src/stores/postgres.js';
import type { IdempotencyStore } from '../../src/stores/types.js';
import { startTcpProxy, type TcpProxy } from '../support/postgres-proxy.js';
import { POSTGRES_URL, postgresPool, randomTable } from '../support/postgres-service.js';
import { eventually } from '../support/redis-postgres-cases.js';

/*
 * docs/guarantees.md F3 / T19 (subset) on PostgreSQL: the store reaches the server through a TCP proxy
 * that the test cuts (connections reset and refused, or a black hole that drops every byte). Every
 * call must reject with StoreUnavailableError within the timeout (bound: < 3 s), nothing hangs,
 * and calls succeed again after the proxy heals. The pool is configured as postgresStore's docs
 * recommend: a connectionTimeoutMillis, and an 'error' listener.
 */

const TIMEOUT_MS = 500;
const claim = (key: string) => ({
  key,
  fingerprint: 'fp',
  token: `t-${key}`,
  leaseMs: 60_000,
  retentionMs: 60_000,
});

describe('postgres outage through a cut TCP proxy: fail fast, recover (T19 subset)', () => {
  const table = randomTable('outage');
  let admin: pg.Pool;
  let proxy: TcpProxy;
  let pool: pg.Pool;
  let store: IdempotencyStore;

  before(async () => {
    admin = await postgresPool();
    await migrate({ pool: admin, table });
    const url = new URL(POSTGRES_URL);
    proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    url.port = String(proxy.port);
    pool = new pg.Pool({ connectionString: url.toString(), max: 5, connectionTimeoutMillis: 1_000 });
    pool.on('error', () => {});
    store = postgresStore({ pool, table, queryTimeoutMs: TIMEOUT_MS });
  });
  after(async () => {
    await pool?.end().catch(() => {});
    await proxy?.close();
    await admin?.query(`DROP TABLE IF EXISTS "${table}"`);
    await admin?.end();
  });

  for (const mode of ['refuse', 'blackhole'] as const) {
    it(`${mode}: every call rejects with StoreUnavailableError within 3 s; healed → served again`, async () => {
      const token = `t-before-${mode}`;
      assert.equal((await store.claim({ ...claim(`before-${mode}`), token })).outcome, 'acquired');

      proxy.cut(mode);
      const started = performance.now();
      const calls = [
        ...Array.from({ length: 8 }, (_, i) => store.claim(claim(`during-${mode}-${i}`))),
        store.get(`before-${mode}`),
        store.heartbeat({ key: `before-${mode}`, token, leaseMs: 1_000, retentionMs: 1_000 }),
        store.sweep(10),
      ];
      const outcomes = await Promise.allSettled(calls);
      const elapsed = performance.now() - started;

      for (const outcome of outcomes) {
        assert.ok(
          outcome.status === 'rejected' && outcome.reason instanceof StoreUnavailableError,
          String(outcome),
        );
      }
      assert.ok(elapsed < 3_000, `calls took ${Math.round(elapsed)} ms while PostgreSQL was cut`);
      console.log(`# ${mode}: ${calls.length} calls rejected within ${Math.round(elapsed)} ms`);

      proxy.heal();
      await eventually(
        'claims to succeed again',
        async () =>
          (await store.claim(claim(`after-${mode}-${Math.random()}`)).catch(() => undefined))?.outcome ===
          'acquired',
        15_000,
      );
      // A claim still waiting for a pool connection when its timer fired runs once the pool
      // connects again; the store gives it back (release), so no key stays held for a caller
      // that already got a 503.
      const states = async () =>
        (await admin.query(`SELECT state FROM "${table}" WHERE key LIKE $1`, [`during-${mode}-%`])).rows.map(
          (r: { state: string }) => r.state,
        );
      await eventually('no outage claim to be held', async () => !(await states()).includes('in_progress'));
      console.log(`# ${mode}: outage claims that ran late, then were released: ${(await states()).length}`);
    });
  }
});
