import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { StoreUnavailableError } from '../../src/core/errors.js';
import { redisStore } from '../../src/stores/redis.js';
import type { RedisClientLike } from '../../src/stores/redis-clients.js';
import type { IdempotencyStore } from '../../src/stores/types.js';
import { eventually } from '../support/redis-postgres-cases.js';
import { type PrivateRedis, startPrivateRedis } from '../support/redis-server.js';
import { ioredisClient, nodeRedisClient } from '../support/redis-service.js';

/*
 * docs/guarantees.md F3 / T19 (subset): a private Redis is killed mid-test. Every store call must
 * reject with StoreUnavailableError within the store's timeout (bound here: < 3 s), nothing hangs,
 * and calls succeed again once Redis is back. The clients keep their default options (offline
 * queue on), the worst case: queued claims run on reconnect, and the store must give them back.
 */

const TIMEOUT_MS = 500;
const claim = (key: string) => ({
  key,
  fingerprint: 'fp',
  token: `t-${key}`,
  leaseMs: 60_000,
  retentionMs: 60_000,
});

describe('redis outage: fail fast while down, recover when back (T19 subset)', () => {
  const servers: PrivateRedis[] = [];
  after(() => Promise.all(servers.map((s) => s.destroy())));

  type Connected = { client: RedisClientLike; ready(): boolean; close(): void };
  const clients: [string, (url: string) => Promise<Connected>][] = [
    [
      'node-redis',
      async (url) => {
        const c = await nodeRedisClient(url);
        return { client: c, ready: () => c.isReady, close: () => c.destroy() };
      },
    ],
    [
      'ioredis',
      async (url) => {
        const c = await ioredisClient(url, { maxRetriesPerRequest: 20 });
        return { client: c, ready: () => c.status === 'ready', close: () => c.disconnect() };
      },
    ],
  ];

  for (const [name, connect] of clients) {
    it(`${name}: killed → StoreUnavailableError within the timeout; restarted → served again`, async () => {
      const server = await startPrivateRedis();
      servers.push(server);
      const { client, ready, close } = await connect(server.url);
      const store: IdempotencyStore = redisStore({ client, commandTimeoutMs: TIMEOUT_MS });
      try {
        assert.equal((await store.claim(claim('before'))).outcome, 'acquired');

        await server.stop('SIGKILL');
        // Once the client knows, it queues commands (offline queue) instead of failing them.
        await eventually('the client to notice', async () => !ready());
        const outageKeys = Array.from({ length: 5 }, (_, i) => `during-${i}`);
        const started = performance.now();
        const calls = [
          ...outageKeys.map((k) => store.claim(claim(k))),
          store.get('before'),
          store.heartbeat({ key: 'before', token: 't-before', leaseMs: 1_000, retentionMs: 1_000 }),
          store.complete({
            key: 'before',
            token: 't-before',
            retentionMs: 1_000,
            response: { status: 200, headers: [], body: new Uint8Array() },
          }),
        ];
        const outcomes = await Promise.allSettled(calls);
        const elapsed = performance.now() - started;

        for (const outcome of outcomes) {
          assert.equal(outcome.status, 'rejected');
          assert.ok(
            outcome.status === 'rejected' && outcome.reason instanceof StoreUnavailableError,
            String(outcome),
          );
        }
        assert.ok(elapsed < 3_000, `calls took ${Math.round(elapsed)} ms while Redis was down`);
        console.log(`# ${name}: ${calls.length} calls rejected within ${Math.round(elapsed)} ms`);

        await server.start();
        await eventually(
          'claims to succeed again',
          async () => {
            const r = await store.claim(claim(`after-${Math.random()}`)).catch(() => undefined);
            return r?.outcome === 'acquired';
          },
          20_000,
        );
        // A claim queued by the client while Redis was down may run on reconnect (not after a
        // restart: EVALSHA then meets an empty script cache); none may be left held.
        const states = [];
        for (const key of outageKeys) {
          await eventually(
            `${key} not to be held`,
            async () => (await store.get(key))?.state !== 'in_progress',
          );
          states.push((await store.get(key))?.state ?? 'absent');
        }
        console.log(`# ${name}: outage claims after recovery: ${states.join(', ')}`);
      } finally {
        close();
      }
    });
  }

  it('a claim answered after the timeout (Redis paused with SIGSTOP) is released, not left held', async () => {
    const server = await startPrivateRedis();
    servers.push(server);
    const client = await ioredisClient(server.url);
    const store = redisStore({ client, commandTimeoutMs: TIMEOUT_MS });
    const pid = server.pid() ?? 0;
    try {
      await store.claim(claim('warm-up'));
      process.kill(pid, 'SIGSTOP');
      const started = performance.now();
      await assert.rejects(store.claim(claim('slow')), StoreUnavailableError);
      assert.ok(performance.now() - started < 3_000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    try {
      await eventually(
        'the late claim to be released',
        async () => (await store.get('slow'))?.state === 'released',
      );
      assert.equal((await store.claim(claim('slow'))).outcome, 'acquired');
    } finally {
      client.disconnect();
    }
  });
});
