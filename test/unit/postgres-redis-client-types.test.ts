import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createClient, createCluster } from '@redis/client';
import { Cluster, Redis } from 'ioredis';
import pg from 'pg';
import type { PostgresPool } from '../../src/stores/postgres.js';
import type {
  IoRedisClusterLike,
  IoRedisLike,
  NodeRedisClientLike,
  NodeRedisClusterLike,
  RedisClientLike,
} from '../../src/stores/redis.js';
import { detectClient } from '../../src/stores/redis-clients.js';

// The store APIs name no driver type; these assignments make a driver's type change fail our
// build (tsc) before it breaks a user's. Nothing here connects: clients are built lazily.

test('a pg Pool fits the PostgresPool subset, connect() included (transactional mode)', async () => {
  const pool = new pg.Pool({ host: '127.0.0.1', port: 1 });
  const asPool: PostgresPool = pool;
  // A bare pg.Client does not fit: its connect() opens the socket, it hands out no pooled client.
  // @ts-expect-error pg.Client is not a pool
  const notAPool: PostgresPool = new pg.Client({ host: '127.0.0.1', port: 1 });
  assert.ok(notAPool);
  assert.equal(typeof asPool.query, 'function');
  assert.equal(typeof asPool.connect, 'function');
  await pool.end();
});

test('node-redis and ioredis clients fit their subsets and are detected by shape', () => {
  const nodeRedis: NodeRedisClientLike = createClient({ url: 'redis://127.0.0.1:1' });
  const nodeCluster: NodeRedisClusterLike = createCluster({ rootNodes: [{ url: 'redis://127.0.0.1:1' }] });
  const io: IoRedisLike = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true });
  const ioCluster: IoRedisClusterLike = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });
  const all: RedisClientLike[] = [nodeRedis, nodeCluster, io, ioCluster];

  const kinds = all.map((client) => detectClient(client).kind);

  assert.deepEqual(kinds, ['node-redis', 'node-redis-cluster', 'ioredis', 'ioredis-cluster']);
  (io as Redis).disconnect();
  (ioCluster as Cluster).disconnect();
});
