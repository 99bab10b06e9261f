import { after, before } from 'node:test';
import type pg from 'pg';
import { type IdempotencyStore, memoryStore } from '../../src/index.js';
import { migrate, postgresStore } from '../../src/stores/postgres.js';
import { redisStore } from '../../src/stores/redis.js';
import { dropTable, postgresPool, randomTable } from './postgres-service.js';
import { nodeRedisClient, randomPrefix } from './redis-service.js';
import { tempSqliteStores } from './temp-sqlite.js';

/** The secret operation-call suites pass to every engine (PostgreSQL and Redis need one). */
export const OPERATION_SECRET = 'operation-suite-secret-0123456789';

export interface StoreMaker {
  name: string;
  /** A fresh store (its own records): closed by the suite's after(). */
  make(): Promise<IdempotencyStore>;
}

/**
 * The four stores the operation call and the consumer run on: memory, SQLite (a temp file),
 * PostgreSQL (a random table) and Redis (a random prefix), the last two on the shared servers.
 * Registers the suite's before()/after() hooks; call it at the top level of a test file.
 */
export function operationStores(prefix: string): StoreMaker[] {
  let pool: pg.Pool | undefined;
  let redis: Awaited<ReturnType<typeof nodeRedisClient>> | undefined;
  const tables: string[] = [];
  const opened: IdempotencyStore[] = [];
  const sqlite = tempSqliteStores(`idemkit-${prefix}-`);
  before(async () => {
    pool = await postgresPool();
    redis = await nodeRedisClient();
  });
  after(async () => {
    for (const store of opened) await store.close().catch(() => {});
    if (pool) {
      for (const table of tables) await dropTable(pool, table);
      await pool.end();
    }
    await redis?.close();
  });
  const keep = (store: IdempotencyStore) => {
    opened.push(store);
    return store;
  };
  return [
    { name: 'memory', make: async () => keep(memoryStore({ onWarning() {} })) },
    { name: 'sqlite', make: async () => keep(sqlite().store) },
    {
      name: 'postgres',
      make: async () => {
        // A table per store, so each test starts empty as on the other stores.
        const table = randomTable(prefix);
        tables.push(table);
        await migrate({ pool: pool as pg.Pool, table });
        return keep(postgresStore({ pool: pool as pg.Pool, table }));
      },
    },
    {
      name: 'redis',
      make: async () =>
        keep(
          redisStore({
            client: redis as NonNullable<typeof redis>,
            prefix: randomPrefix(prefix),
            onWarning() {},
          }),
        ),
    },
  ];
}
