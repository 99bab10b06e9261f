// Found while reworking the Redis completion: an ioredis subscriber emits 'message' as
// (channel, message), node-redis calls its listener as (message, channel); the settle channel
// read both the node-redis way, so with ioredis every PUBLISH was dropped and a waiting duplicate
// was only woken by its poll (the engine-level wake-up test still passed on that).
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { IdempotencyStore } from '../../src/core/store.js';
import { redisStore } from '../../src/stores/redis.js';
import type { RedisClientLike } from '../../src/stores/redis-clients.js';
import { ioredisClient, nodeRedisClient, randomPrefix } from '../support/redis-service.js';

let nodeRedis: Awaited<ReturnType<typeof nodeRedisClient>>;
let ioredis: Redis;
before(async () => {
  nodeRedis = await nodeRedisClient();
  ioredis = await ioredisClient();
});
after(() => {
  nodeRedis?.destroy();
  ioredis?.disconnect();
});

async function until(check: () => boolean, ms = 3_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await delay(5);
  return check();
}

/** Resolves once `store`'s channel listens (listeners are called once, when it comes up). */
async function listening(store: IdempotencyStore, key: string): Promise<void> {
  let up = false;
  assert.ok(
    store.onSettled?.(key, () => (up = true)),
    'subscribed',
  );
  assert.ok(await until(() => up), 'the channel listens');
}

for (const [name, client] of [
  ['ioredis', () => ioredis],
  ['node-redis', () => nodeRedis],
] as [string, () => RedisClientLike][]) {
  it(`${name}: a waiter is woken by the settling PUBLISH, not only by close()`, async () => {
    const prefix = randomPrefix('settle-message');
    const owner = redisStore({ client: nodeRedis, prefix });
    const waiter = redisStore({ client: client(), prefix });
    const claim = (token: string) => ({
      key: 'k',
      fingerprint: 'fp',
      token,
      leaseMs: 60_000,
      retentionMs: 60_000,
    });
    try {
      await owner.claim(claim('owner'));
      assert.equal((await waiter.claim(claim('dup'))).outcome, 'in_progress');
      await listening(waiter, 'k');
      let woken = false;
      assert.ok(waiter.onSettled?.('k', () => (woken = true)));

      assert.equal(await owner.release({ key: 'k', token: 'owner', retentionMs: 1_000 }), true);
      assert.ok(await until(() => woken), 'the release woke the waiter');
    } finally {
      await owner.close();
      await waiter.close();
    }
  });
}
