import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { memoryStore } from '../../src/index.js';
import { migrate, postgresStore } from '../../src/stores/postgres.js';
import { redisStore } from '../../src/stores/redis.js';
import { defineHttpContract, type HttpContractOptions, type StoreHandle } from '../../src/testing/index.js';
import { dropTable, postgresPool, randomTable } from './postgres-service.js';
import { nodeRedisClient, randomPrefix } from './redis-service.js';
import { tempSqliteStores } from './temp-sqlite.js';

/**
 * Runs the HTTP contract unchanged through one adapter on each of the four stores: memory, SQLite,
 * PostgreSQL and Redis (real servers; an unreachable one fails the suite). Key fuzzing is about
 * the core's key parsing, which the fetch adapter's suite already runs 10,000 times; adapters run
 * fewer cases (IDEMKIT_ADAPTER_FUZZ_RUNS, default 500) so the whole matrix stays inside CI's budget.
 *
 * Call it at the top level of a test file, once per adapter variant.
 */
export function defineAdapterContract(
  name: string,
  start: HttpContractOptions['start'],
  variant: AdapterContractVariant = {},
): void {
  const secret = 'contract-secret-for-adapters';
  const fuzzRuns = Number(process.env.IDEMKIT_ADAPTER_FUZZ_RUNS ?? 500);
  const quiet = { onWarning() {} };
  const table = randomTable('adapter');
  let pool: pg.Pool | undefined;
  let redis: Awaited<ReturnType<typeof nodeRedisClient>> | undefined;

  before(async () => {
    pool = await postgresPool();
    await migrate({ pool, table });
    redis = await nodeRedisClient();
  });
  after(async () => {
    if (pool) {
      await dropTable(pool, table);
      await pool.end();
    }
    await redis?.close();
  });

  const stores: [string, () => StoreHandle | Promise<StoreHandle>][] = [
    ['memory', () => ({ store: memoryStore(quiet) })],
    ['sqlite', tempSqliteStores(`idemkit-${name.replace(/\W+/g, '-')}-`)],
    ['postgres', () => ({ store: postgresStore({ pool: required(pool), table }) })],
    [
      'redis',
      () => ({ store: redisStore({ client: required(redis), prefix: randomPrefix('adapter'), ...quiet }) }),
    ],
  ];
  const excluded = Object.keys(variant.notApplicable ?? {});
  const register: HttpContractOptions['it'] = (testName, fn) =>
    excluded.some((prefix) => testName.startsWith(prefix)) ? undefined : it(testName, fn);
  for (const [storeName, createStore] of stores) {
    defineHttpContract({
      name: `${name} + ${storeName} store`,
      describe,
      it: register,
      secret,
      fuzzRuns,
      createStore,
      start,
    });
  }
}

export interface AdapterContractVariant {
  /**
   * Contract tests that cannot hold for this variant because of something in front of the adapter
   * (not the adapter), by the start of their name, each with the reason. They are not registered;
   * the variant's own test file must test what holds instead.
   */
  notApplicable?: Readonly<Record<string, string>>;
}

function required<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('the suite did not connect to its store server (see before())');
  return value;
}
