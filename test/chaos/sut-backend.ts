import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { IdempotencyStore } from '../../src/index.js';
import { dynamodbStore } from '../../src/stores/dynamodb.js';
import { postgresStore } from '../../src/stores/postgres.js';
import { redisStore } from '../../src/stores/redis.js';
import { sqliteStore } from '../../src/stores/sqlite.js';
import type { StoreSpec } from './config.js';

/** The real store a SUT runs on, built from its spec; `close` also ends the connection. */
export interface Backend {
  store: IdempotencyStore;
  /** pg-txn only: the pool the effects table is read through. */
  pool?: pg.Pool;
  close(): Promise<void>;
}

export function openBackend(spec: StoreSpec, storeTimeoutMs: number): Backend {
  const quiet = () => {};
  switch (spec.kind) {
    case 'sqlite': {
      const store = sqliteStore({ path: spec.path }, { timeoutMs: storeTimeoutMs });
      return { store, close: () => store.close() };
    }
    case 'postgres':
    case 'pg-txn': {
      // A short connect timeout: a query waiting for a connection is not covered by pg's
      // query timeout (see PostgresStoreOptions.pool).
      const pool = new pg.Pool({
        connectionString: spec.url,
        max: 10,
        connectionTimeoutMillis: storeTimeoutMs,
      });
      pool.on('error', quiet);
      const store = postgresStore({
        pool,
        table: spec.table,
        queryTimeoutMs: storeTimeoutMs,
        onWarning: quiet,
      });
      return {
        store,
        pool,
        close: async () => {
          await store.close();
          await pool.end();
        },
      };
    }
    case 'redis': {
      // No offline queue: while Redis is unreachable a command fails at once (503), it is not
      // held and sent later, after the engine has answered.
      const client = new Redis(spec.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
      client.on('error', quiet);
      const store = redisStore({
        client,
        prefix: spec.prefix,
        commandTimeoutMs: storeTimeoutMs,
        onUnsafeConfig: 'warn',
        onWarning: quiet,
      });
      return {
        store,
        close: async () => {
          await store.close();
          client.disconnect();
        },
      };
    }
    case 'dynamodb': {
      const client = new DynamoDBClient({
        endpoint: spec.endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'idemkit-chaos', secretAccessKey: 'idemkit-chaos' },
        maxAttempts: 1,
      });
      const store = dynamodbStore({
        client,
        tableName: spec.table,
        timeoutMs: storeTimeoutMs,
        onWarning: quiet,
      });
      return {
        store,
        close: async () => {
          await store.close();
          client.destroy();
        },
      };
    }
    default:
      return spec satisfies never;
  }
}
