import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { Redis } from 'ioredis';
import { redisStore } from '../../src/stores/redis.js';
import type { IoRedisLike } from '../../src/stores/redis-clients.js';
import { ioredisClient, randomPrefix } from '../support/redis-service.js';

/*
 * With a standalone ioredis client the store sends the commands of one tick as one pipeline (one
 * write, one read on the server). Each caller must still get its own reply or its own error.
 */

let ioredis: Redis;
before(async () => {
  ioredis = await ioredisClient();
});
after(() => ioredis?.disconnect());

function spying() {
  const seen = { pipelines: 0, single: 0 };
  const client: IoRedisLike = {
    callBuffer: (command, args) => {
      seen.single++;
      return ioredis.callBuffer(command, args);
    },
    pipeline: () => {
      seen.pipelines++;
      return ioredis.pipeline();
    },
  };
  return { client, seen };
}

const RESPONSE = { status: 200, headers: [] as [string, string][], body: Buffer.from('ok') };
const claim = (key: string, token: string) => ({
  key,
  fingerprint: 'fp',
  token,
  leaseMs: 60_000,
  retentionMs: 60_000,
});

it('one tick of calls is one pipeline; each call gets its own answer, and an error stays its own', async () => {
  const prefix = randomPrefix('batches');
  const { client, seen } = spying();
  const store = redisStore({ client, prefix });
  await ioredis.set(`${prefix}{foreign}`, 'hello');

  const answers = await Promise.allSettled([
    store.claim(claim('a', 't-a')),
    store.claim(claim('b', 't-b')),
    store.claim(claim('foreign', 't-f')),
    store.get('missing'),
  ]);
  assert.equal(seen.pipelines, 1);
  assert.deepEqual(answers[0], { status: 'fulfilled', value: { outcome: 'acquired', generation: 1 } });
  assert.deepEqual(answers[1], { status: 'fulfilled', value: { outcome: 'acquired', generation: 1 } });
  assert.equal(answers[2].status, 'rejected');
  assert.match(String((answers[2] as PromiseRejectedResult).reason), /not in idemkit record format/);
  assert.deepEqual(answers[3], { status: 'fulfilled', value: undefined });

  const [done, dup, fenced] = await Promise.all([
    store.complete({ key: 'a', token: 't-a', response: RESPONSE, retentionMs: 60_000 }),
    store.claim(claim('b', 't-other')),
    store.complete({ key: 'b', token: 'not-the-owner', response: RESPONSE, retentionMs: 60_000 }),
  ]);
  assert.deepEqual([done, dup.outcome, fenced], [true, 'in_progress', false]);
  assert.equal((await store.get('a'))?.state, 'completed');

  // A lone call is sent as it is, without a pipeline.
  const before = { ...seen };
  assert.equal(await store.delete('a'), true);
  assert.deepEqual(seen, { pipelines: before.pipelines, single: before.single + 1 });
});

it('a pipeline that cannot be sent fails each of its calls with the store error', async () => {
  const broken: IoRedisLike = {
    callBuffer: () => Promise.reject(new Error('connection is closed')),
    pipeline: () => ({
      callBuffer: () => undefined,
      exec: () => Promise.reject(new Error('connection is closed')),
    }),
  };
  const store = redisStore({ client: broken, prefix: randomPrefix('batches-broken') });
  const answers = await Promise.allSettled([store.claim(claim('x', 't1')), store.get('y')]);
  for (const answer of answers) {
    assert.equal(answer.status, 'rejected');
    assert.match(String((answer as PromiseRejectedResult).reason), /connection is closed/);
  }
});
