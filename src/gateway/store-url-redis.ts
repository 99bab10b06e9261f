import type { RedisClientLike } from '../stores/redis.js';
import { ConfigError } from './config-error.js';
import { exportsOf, type ImportModule, loadDriver } from './store-url-drivers.js';
import type { StoreTarget } from './store-url-parse.js';
import type { GatewayLogger } from './types.js';

type RedisTarget = Extract<StoreTarget, { kind: 'redis' | 'redis-cluster' }>;
type NodeRedis = typeof import('@redis/client');
type IoRedis = typeof import('ioredis');

interface Context {
  logger: GatewayLogger;
  importModule: ImportModule;
  connectTimeoutMs: number;
}

export interface RedisConnection {
  client: RedisClientLike;
  disconnect(): Promise<void>;
}

/**
 * Connects the client the store URL asks for. Commands fail fast while Redis is down (no offline
 * queue): a queued claim could otherwise run long after its request got a 503. A standalone
 * server that is not up yet is retried in the background, so the gateway can start first.
 */
export async function openRedis(target: RedisTarget, context: Context): Promise<RedisConnection> {
  const names =
    target.client === 'ioredis'
      ? ['ioredis']
      : target.client === 'node-redis'
        ? ['@redis/client', 'redis']
        : ['@redis/client', 'redis', 'ioredis'];
  const { name, module } = await loadDriver(names, `${target.kind}://`, context.importModule);
  return name === 'ioredis'
    ? openIoRedis(exportsOf<IoRedis>(module), target, context)
    : openNodeRedis(exportsOf<NodeRedis>(module), target, context);
}

async function openNodeRedis(
  driver: NodeRedis,
  target: RedisTarget,
  context: Context,
): Promise<RedisConnection> {
  const { logger, connectTimeoutMs } = context;
  const socket = {
    connectTimeout: connectTimeoutMs,
    reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 2_000),
  };
  const client =
    target.kind === 'redis'
      ? driver.createClient({ url: target.url, disableOfflineQueue: true, socket })
      : driver.createCluster({
          rootNodes: target.nodes.map(({ host, port }) => ({ url: `redis://${host}:${port}` })),
          defaults: { ...target.auth, disableOfflineQueue: true, socket },
        });
  client.on('error', throttledWarn(logger));
  const connected = client.connect();
  const ready = await settleWithin(connected, connectTimeoutMs);
  if (ready === 'failed' || (ready === 'pending' && target.kind === 'redis-cluster')) {
    // A cluster client that never saw the slot map cannot recover by itself: stop here.
    client.destroy();
    throw new ConfigError(
      `cannot reach the Redis Cluster at ${target.kind === 'redis-cluster' ? target.nodes.map((n) => `${n.host}:${n.port}`).join(',') : ''}; start it or fix --store`,
    );
  }
  if (ready === 'pending') logger.warn({}, 'redis is not reachable yet; keyed requests get 503 until it is');
  return {
    client: client as unknown as RedisClientLike,
    async disconnect() {
      if (client.isOpen) await settleWithin(client.close(), 2_000);
      try {
        client.destroy();
      } catch {
        // close() already finished it.
      }
    },
  };
}

async function openIoRedis(driver: IoRedis, target: RedisTarget, context: Context): Promise<RedisConnection> {
  const { logger, connectTimeoutMs } = context;
  const common = { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: connectTimeoutMs };
  const client =
    target.kind === 'redis'
      ? new driver.Redis(target.url, common)
      : new driver.Cluster(target.nodes, {
          enableOfflineQueue: false,
          redisOptions: { ...common, ...target.auth },
        });
  client.on('error', throttledWarn(logger));
  const ready = await settleWithin(
    new Promise<void>((resolve) => client.once('ready', () => resolve())),
    connectTimeoutMs,
  );
  if (ready === 'pending') logger.warn({}, 'redis is not reachable yet; keyed requests get 503 until it is');
  return {
    client: client as unknown as RedisClientLike,
    async disconnect() {
      if (client.status === 'ready') await settleWithin(client.quit(), 2_000);
      client.disconnect();
    },
  };
}

async function settleWithin(promise: Promise<unknown>, ms: number): Promise<'ok' | 'failed' | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'pending'>((resolve) => {
    timer = setTimeout(() => resolve('pending'), ms);
  });
  const result = await Promise.race([
    promise.then(
      () => 'ok' as const,
      () => 'failed' as const,
    ),
    pending,
  ]);
  clearTimeout(timer);
  return result;
}

/** A down Redis errors on every reconnect attempt; one line per 10 s is enough. */
function throttledWarn(logger: GatewayLogger): (error: Error) => void {
  let last = Number.NEGATIVE_INFINITY;
  return (error) => {
    if (Date.now() - last < 10_000) return;
    last = Date.now();
    logger.warn({ error: error.message }, 'redis connection error');
  };
}
