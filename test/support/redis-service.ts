import { createClient, createCluster } from '@redis/client';
import { Cluster, Redis } from 'ioredis';

/*
 * Clients for the shared Redis (REDIS_URL, default 127.0.0.1:6379) and for private instances.
 * An unreachable server fails the test with how to start it; nothing is skipped (conventions §7.4).
 */

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const START =
  'start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no (or set REDIS_URL)';

const makeCluster = (ports: readonly number[]) =>
  createCluster({ rootNodes: ports.map((p) => ({ url: `redis://127.0.0.1:${p}` })) });
export type NodeRedisCluster = ReturnType<typeof makeCluster>;

/** A connected node-redis client. Errors are swallowed: outage tests provoke them on purpose. */
export async function nodeRedisClient(url = REDIS_URL, options: { disableOfflineQueue?: boolean } = {}) {
  const client = createClient({ url, ...options });
  client.on('error', () => {});
  try {
    await withDeadline(client.connect(), 3_000);
    await withDeadline(client.ping(), 3_000);
  } catch (error) {
    client.destroy();
    throw new Error(`Redis is not reachable at ${url} (${(error as Error).message}); ${START}`);
  }
  return client;
}

export async function ioredisClient(url = REDIS_URL, options: Record<string, unknown> = {}): Promise<Redis> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, ...options });
  client.on('error', () => {});
  try {
    await withDeadline(client.connect(), 3_000);
    await withDeadline(client.ping(), 3_000);
  } catch (error) {
    client.disconnect();
    throw new Error(`Redis is not reachable at ${url} (${(error as Error).message}); ${START}`);
  }
  return client;
}

export async function nodeRedisClusterClient(ports: readonly number[]): Promise<NodeRedisCluster> {
  const cluster = makeCluster(ports);
  cluster.on('error', () => {});
  await withDeadline(cluster.connect(), 10_000);
  return cluster;
}

export async function ioredisClusterClient(ports: readonly number[]): Promise<Cluster> {
  const cluster = new Cluster(
    ports.map((port) => ({ host: '127.0.0.1', port })),
    { lazyConnect: true },
  );
  cluster.on('error', () => {});
  await withDeadline(cluster.connect(), 10_000);
  return cluster;
}

export function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** A random prefix per suite run, so suites can share one Redis. */
export function randomPrefix(name: string): string {
  return `idemkit-test:${name}:${Math.random().toString(36).slice(2, 10)}:`;
}
