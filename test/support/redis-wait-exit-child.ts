import { createIdempotency } from '../../src/index.js';
import { redisStore } from '../../src/stores/redis.js';
import { request, response } from './engine-helpers.js';
import { ioredisClient, nodeRedisClient, randomPrefix } from './redis-service.js';

/*
 * An app that used wait mode on Redis (so the store subscribed for wake-ups), closes its own
 * client and forgets store.close(): it must still exit by itself. Argument: node-redis | ioredis.
 */
const kind = process.argv[2];
const client = kind === 'ioredis' ? await ioredisClient() : await nodeRedisClient();
const store = redisStore({ client, prefix: randomPrefix('exit'), onWarning() {} });
const idem = createIdempotency({
  store,
  secret: 'exit-test-secret-0123456789abcdef',
  wait: 5_000,
  onWarning() {},
});
const first = await idem.begin(request({ key: 'exit-1' }));
if (first.kind !== 'execute') throw new Error(`expected execute, got ${first.kind}`);
const duplicate = idem.begin(request({ key: 'exit-1' }));
await new Promise((resolve) => setTimeout(resolve, 100));
await first.commit(response());
const answer = await duplicate;
if (answer.kind !== 'replay') throw new Error(`expected replay, got ${answer.kind}`);
await idem.close();
if ('quit' in client && kind === 'ioredis') await client.quit();
else await (client as { close(): Promise<unknown> }).close();
console.log('done');
