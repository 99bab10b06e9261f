import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { withIdempotency } from '../../src/adapters/fetch.js';
import type { IdempotencyStore } from '../../src/index.js';
import { migrate, postgresStore } from '../../src/stores/postgres.js';
import { redisStore } from '../../src/stores/redis.js';
import { defineHttpContract, type HttpContractOptions } from '../../src/testing/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { gatewayStart } from '../support/gateway-start.js';
import { dropTable, postgresPool, randomTable } from '../support/postgres-service.js';
import { type PrivateCluster, startPrivateCluster } from '../support/redis-cluster.js';
import {
  ioredisClient,
  ioredisClusterClient,
  nodeRedisClient,
  nodeRedisClusterClient,
  randomPrefix,
} from '../support/redis-service.js';

/*
 * The HTTP contract (group A and the security cases) through the fetch adapter and the gateway on
 * the shared stores: PostgreSQL, Redis with node-redis and ioredis, and a private 3-primary
 * Redis Cluster. Real servers; an unreachable one fails the suite with how to start it.
 */

const SECRET = 'contract-secret-for-shared-stores';
const fuzzRuns = Number(process.env.IDEMKIT_SHARED_FUZZ_RUNS ?? 1_000);
const quiet = { onWarning() {} };

let pool: pg.Pool;
const table = randomTable('http');
let cluster: PrivateCluster;
const closers: (() => Promise<unknown>)[] = [];

before(async () => {
  pool = await postgresPool();
  await migrate({ pool, table });
  cluster = await startPrivateCluster();
});
after(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  await dropTable(pool, table);
  await pool.end();
  await cluster.destroy();
});

/** One client per backend, made lazily inside the suite's first server. */
function lazy<T>(make: () => Promise<T>, close: (client: T) => Promise<unknown>): () => Promise<T> {
  let client: Promise<T> | undefined;
  return () => {
    client ??= make().then((made) => {
      closers.push(() => close(made));
      return made;
    });
    return client;
  };
}

const nodeRedis = lazy(
  () => nodeRedisClient(),
  (c) => c.close(),
);
const ioredis = lazy(
  () => ioredisClient(),
  async (c) => c.disconnect(),
);
const nodeRedisCluster = lazy(
  () => nodeRedisClusterClient(cluster.ports),
  (c) => c.close(),
);
const ioredisCluster = lazy(
  () => ioredisClusterClient(cluster.ports),
  async (c) => c.disconnect(),
);

const stores: [string, () => Promise<IdempotencyStore>][] = [
  ['postgres', async () => postgresStore({ pool, table })],
  [
    'redis (node-redis)',
    async () => redisStore({ client: await nodeRedis(), prefix: randomPrefix('http'), ...quiet }),
  ],
  [
    'redis (ioredis)',
    async () => redisStore({ client: await ioredis(), prefix: randomPrefix('http'), ...quiet }),
  ],
  [
    'redis cluster (node-redis)',
    async () => redisStore({ client: await nodeRedisCluster(), prefix: randomPrefix('http'), ...quiet }),
  ],
  [
    'redis cluster (ioredis)',
    async () => redisStore({ client: await ioredisCluster(), prefix: randomPrefix('http'), ...quiet }),
  ],
];

const fetchAdapter: HttpContractOptions['start'] = ({ app, options }) =>
  serveFetch(withIdempotency((req, ctx) => app.fetch(req, ctx), options));

const gateway = gatewayStart(SECRET);

for (const [storeName, createStore] of stores) {
  const adapters: [string, HttpContractOptions['start']][] = [['fetch adapter', fetchAdapter]];
  // The gateway runs on one client per backend: the adapter matrix is already covered above.
  if (storeName === 'postgres' || storeName === 'redis (node-redis)') adapters.push(['gateway', gateway]);
  for (const [adapterName, start] of adapters) {
    defineHttpContract({
      name: `${adapterName} + ${storeName} store`,
      describe,
      it,
      secret: SECRET,
      fuzzRuns,
      createStore: async () => ({ store: await createStore() }),
      start,
    });
  }
}
