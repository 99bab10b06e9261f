import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Cluster, Redis } from 'ioredis';
import {
  IdempotencyConfigError,
  StoreMisconfiguredError,
  StoreUnavailableError,
} from '../../src/core/errors.js';
import { redisStore } from '../../src/stores/redis.js';
import { keySlot, type RedisClientLike } from '../../src/stores/redis-clients.js';
import type { IdempotencyStore } from '../../src/stores/types.js';
import { defineStoreContract } from '../../src/testing/store-contract.js';
import { type PrivateCluster, startPrivateCluster } from '../support/redis-cluster.js';
import { defineNetworkedStoreCases } from '../support/redis-postgres-cases.js';
import { type PrivateRedis, redisCli, startPrivateRedis } from '../support/redis-server.js';
import {
  ioredisClient,
  ioredisClusterClient,
  type NodeRedisCluster,
  nodeRedisClient,
  nodeRedisClusterClient,
  randomPrefix,
} from '../support/redis-service.js';

// The shared Redis (node-redis and ioredis on one server) and a private 3-primary Cluster started
// for this file; clients are made once and shared by every case, as an app would.
let nodeRedis: Awaited<ReturnType<typeof nodeRedisClient>>;
let ioredis: Redis;
let cluster: PrivateCluster;
let nodeCluster: NodeRedisCluster;
let ioCluster: Cluster;

before(async () => {
  nodeRedis = await nodeRedisClient();
  ioredis = await ioredisClient();
  cluster = await startPrivateCluster();
  nodeCluster = await nodeRedisClusterClient(cluster.ports);
  ioCluster = await ioredisClusterClient(cluster.ports);
});
after(async () => {
  nodeRedis?.destroy();
  ioredis?.disconnect();
  nodeCluster?.destroy();
  ioCluster?.disconnect();
  await cluster?.destroy();
});

const setups: [string, () => RedisClientLike][] = [
  ['node-redis', () => nodeRedis],
  ['ioredis', () => ioredis],
  ['node-redis Cluster', () => nodeCluster],
  ['ioredis Cluster', () => ioCluster],
];

for (const [name, client] of setups) {
  defineStoreContract({
    name: `redis (${name})`,
    describe,
    it,
    capabilities: { expiresByTtl: true },
    create: async () => ({ store: redisStore({ client: client(), prefix: randomPrefix('contract') }) }),
    modelRuns: 30,
  });
  defineNetworkedStoreCases({
    name: `redis (${name})`,
    expiresByTtl: true,
    create: async () => ({ store: redisStore({ client: client(), prefix: randomPrefix('cases') }) }),
  });
}

const RESPONSE = { status: 200, headers: [] as [string, string][], body: new Uint8Array() };

describe('redis store', () => {
  const claim = (key: string) => ({
    key,
    fingerprint: 'fp',
    token: 't1',
    leaseMs: 60_000,
    retentionMs: 60_000,
  });
  const privates: PrivateRedis[] = [];
  after(() => Promise.all(privates.map((p) => p.destroy())));
  async function privateRedis(args: string[] = []) {
    const server = await startPrivateRedis(args);
    privates.push(server);
    return { server, client: await ioredisClient(server.url) };
  }

  it('keeps a record only under prefix{key}, with a TTL at expiresAt', async () => {
    const prefix = randomPrefix('layout');
    const store = redisStore({ client: ioredis, prefix });
    await store.claim(claim('abc'));

    const [raw, wrapped, ttl] = await Promise.all([
      ioredis.exists('abc'),
      ioredis.exists(`${prefix}{abc}`),
      ioredis.pttl(`${prefix}{abc}`),
    ]);

    assert.deepEqual([raw, wrapped], [0, 1]);
    assert.ok(ttl > 119_000 && ttl <= 120_000, `pttl ${ttl}`);
    await store.delete('abc');
  });

  it('refuses a record it cannot read (an older hash record, a foreign value) with a clear 503, never a crash', async () => {
    for (const client of [nodeRedis, ioredis] as RedisClientLike[]) {
      const prefix = randomPrefix('format');
      const store = redisStore({ client, prefix });
      // The hash an earlier idemkit wrote, and a value something else wrote under the prefix.
      await ioredis.hset(`${prefix}{old}`, {
        st: 'completed',
        fp: 'fp',
        gen: '1',
        lu: '1',
        ea: '2',
        ca: '1',
      });
      await ioredis.set(`${prefix}{foreign}`, 'hello');
      const refused = { name: StoreUnavailableError.name, message: /not in idemkit record format/ };

      for (const key of ['old', 'foreign']) {
        await assert.rejects(store.claim(claim(key)), refused, `claim ${key}`);
        await assert.rejects(store.get(key), refused, `get ${key}`);
        await assert.rejects(
          store.complete({ key, token: 't1', response: RESPONSE, retentionMs: 1_000 }),
          refused,
        );
        // Deleting it (as the message says) frees the key.
        assert.equal(await store.delete(key), true);
        assert.equal((await store.claim(claim(key))).outcome, 'acquired');
      }
    }
  });

  it('falls back to EVAL when the server lost its scripts (NOSCRIPT), with both clients', async () => {
    const { server, client } = await privateRedis();
    const nr = await nodeRedisClient(server.url);
    try {
      for (const c of [client, nr] as RedisClientLike[]) {
        const store = redisStore({ client: c });
        await redisCli(server.port, 'SCRIPT', 'FLUSH');
        const key = `noscript-${Math.random()}`;

        assert.equal((await store.claim(claim(key))).outcome, 'acquired');
        assert.equal(await store.release({ key, token: 't1', retentionMs: 1_000 }), true);
      }
    } finally {
      client.disconnect();
      nr.destroy();
    }
  });

  it('check() accepts noeviction, refuses or warns on an evicting policy, warns when CONFIG is forbidden', async () => {
    await redisStore({ client: ioredis }).check?.();
    const { client: lru } = await privateRedis(['--maxmemory-policy', 'volatile-lru']);
    const { client: locked } = await privateRedis(['--rename-command', 'CONFIG', '""']);
    const warnings: string[] = [];
    const onWarning = (m: string) => void warnings.push(m);
    try {
      await assert.rejects(
        redisStore({ client: lru }).check?.() ?? Promise.resolve(),
        StoreMisconfiguredError,
      );
      await redisStore({ client: lru, onUnsafeConfig: 'warn', onWarning }).check?.();
      await redisStore({ client: locked, onWarning }).check?.();
    } finally {
      lru.disconnect();
      locked.disconnect();
    }
    assert.equal(warnings.length, 2);
    assert.match(warnings[0] ?? '', /volatile-lru, not noeviction/);
    assert.match(warnings[1] ?? '', /cannot read maxmemory-policy/);
  });

  it('check() refuses a server older than Redis 7.0 (the scripts read PEXPIRETIME)', async () => {
    await redisStore({ client: nodeRedis }).check?.();
    // The real server answers every command but INFO, which claims to be 6.2.
    const sixTwo = {
      sendCommand: (args: string[], options?: unknown) =>
        args[0] === 'INFO'
          ? Promise.resolve(Buffer.from('# Server\r\nredis_version:6.2.14\r\nredis_mode:standalone\r\n'))
          : (nodeRedis.sendCommand as (a: string[], o?: unknown) => Promise<unknown>)(args, options),
    };
    await assert.rejects(
      redisStore({ client: sixTwo as unknown as RedisClientLike, notify: false }).check?.() ??
        Promise.resolve(),
      (error: unknown) =>
        error instanceof StoreMisconfiguredError && /Redis 7\.0 or later/.test(error.message),
    );
  });

  it('on Cluster, check() reads every primary and records spread over all three', async () => {
    for (const client of [nodeCluster, ioCluster] as RedisClientLike[]) {
      const prefix = randomPrefix('spread');
      const store = redisStore({ client, prefix });
      await store.check?.();
      await Promise.all(Array.from({ length: 60 }, (_, i) => store.claim(claim(`spread-${i}`))));

      const counts = await Promise.all(
        cluster.ports.map((p) => redisCli(p, '--scan', '--pattern', `${prefix}*`)),
      );

      assert.ok(
        counts.every((out) => out.split('\n').filter(Boolean).length > 0),
        'a primary holds no record',
      );
    }
    // One evicting primary is enough to refuse: any record may land on it.
    const last = cluster.ports[2] ?? 0;
    await redisCli(last, 'CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru');
    try {
      for (const client of [nodeCluster, ioCluster] as RedisClientLike[]) {
        await assert.rejects(redisStore({ client }).check?.() ?? Promise.resolve(), StoreMisconfiguredError);
      }
    } finally {
      await redisCli(last, 'CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    }
  });

  it('keySlot agrees with CLUSTER KEYSLOT', async () => {
    const port = cluster.ports[0] ?? 0;
    for (const key of ['a', 'idemkit:{abc}', 'x{}y', '{', 'p:{ü€}:q', 'foo{bar}{zap}']) {
      assert.equal(keySlot(key), Number(await redisCli(port, 'CLUSTER', 'KEYSLOT', key)), key);
    }
  });

  it('WAIT goes to the primary that took the write (both Cluster clients); a shortfall warns', async () => {
    for (const client of [nodeCluster, ioCluster] as RedisClientLike[]) {
      const warnings: string[] = [];
      const store: IdempotencyStore = redisStore({
        client,
        prefix: randomPrefix('wait'),
        wait: { replicas: 1, timeoutMs: 20 },
        onWarning: (m) => void warnings.push(m),
      });
      const before = await waitCalls(cluster.ports);

      await store.claim(claim('w'));

      const after = await waitCalls(cluster.ports);
      const grew = cluster.ports.filter((_, i) => (after[i] ?? 0) > (before[i] ?? 0));
      assert.equal(grew.length, 1, 'exactly one node ran WAIT');
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? '', /WAIT reached 0 of 1/);
    }
  });

  it('refuses a prefix with braces and a client of unknown shape', () => {
    assert.throws(() => redisStore({ client: ioredis, prefix: 'a{b}' }), IdempotencyConfigError);
    assert.throws(() => redisStore({ client: {} as RedisClientLike }), IdempotencyConfigError);
  });
});

async function waitCalls(ports: readonly number[]): Promise<number[]> {
  return Promise.all(
    ports.map(async (p) => {
      const stats = await redisCli(p, 'INFO', 'commandstats');
      return Number(/cmdstat_wait:calls=(\d+)/.exec(stats)?.[1] ?? 0);
    }),
  );
}
