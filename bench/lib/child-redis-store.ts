import { createClient } from '@redis/client';
import type { IdempotencyStore } from '../../src/stores/types.js';
import type { ChildSide } from './child-side.js';

/**
 * A bench child's Redis store on node-redis 5, set up as the store's docs recommend (no offline
 * queue, errors handled). An unreachable server is reported to the runner as `unavailable` and
 * gives `undefined`; the store and the client are closed on `stop`. `commandTimeoutMs` (the
 * child's store timeout, when it has one) bounds the store's commands: under valgrind a cold
 * request runs ~50× slower than the store's 2 s default allows.
 */
export async function childRedisStore(
  side: Pick<ChildSide, 'send' | 'cleanups'>,
  load: <T>(module: string) => Promise<T>,
  redis: { url: string; prefix: string },
  commandTimeoutMs?: number,
): Promise<IdempotencyStore | undefined> {
  const { redisStore } = await load<typeof import('../../src/stores/redis.js')>('stores/redis');
  const client = createClient({ url: redis.url, disableOfflineQueue: true });
  client.on('error', () => {});
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('no connection within 3 s')), 3_000)),
    ]);
  } catch (error) {
    client.destroy();
    side.send({
      type: 'unavailable',
      reason: `Redis is not reachable at ${redis.url} (${(error as Error).message})`,
    });
    return undefined;
  }
  const store = redisStore({
    client,
    prefix: redis.prefix,
    onWarning() {},
    ...(commandTimeoutMs === undefined ? {} : { commandTimeoutMs }),
  });
  side.cleanups.push(
    () => store.close(),
    () => client.close(),
  );
  return store;
}
