/**
 * The runners' side of Redis in `npm run bench -- adapters`, `gateway` and `instructions`: its own client reads the server's CPU
 * and command counters around each measured run and deletes each run's keys. The bench neither
 * starts nor pins Redis; it is the shared server on loopback.
 */
import { createClient } from '@redis/client';

const makeClient = (url: string) => createClient({ url, disableOfflineQueue: true });
export type RedisClient = ReturnType<typeof makeClient>;

/** The bench sends load over loopback only: a Redis URL elsewhere is refused. */
export function loopbackRedis(text: string): string {
  const url = new URL(text);
  if (url.protocol !== 'redis:' || !['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
    throw new Error(`--redis: expected redis://127.0.0.1:<port> (loopback only), got ${text}`);
  }
  return text;
}

export async function connectRedis(
  url: string,
): Promise<{ ok: true; client: RedisClient } | { ok: false; reason: string }> {
  const client = makeClient(url);
  client.on('error', () => {});
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('no connection within 3 s')), 3_000)),
    ]);
    return { ok: true, client };
  } catch (error) {
    client.destroy();
    return { ok: false, reason: `Redis is not reachable at ${url} (${(error as Error).message})` };
  }
}

export interface RedisSample {
  /** The server's CPU so far (user + system, all its threads, all its clients), µs. */
  cpuUs: number;
  /** Commands the server executed so far (INFO commandstats, every command, every client). */
  calls: number;
}

/**
 * One `INFO cpu` and one `INFO commandstats`. Both count the whole server: another client's load
 * lands in them too, which the commands per request reveal (a bare run, which sends Redis nothing,
 * shows that background). commandstats also counts each `redis.call` inside a Lua script, so a
 * script is 1 + the commands it runs. The two INFO calls are noise of 2 in tens of thousands.
 */
export async function sampleRedis(client: RedisClient): Promise<RedisSample> {
  const [cpu, stats] = await Promise.all([client.info('cpu'), client.info('commandstats')]);
  const field = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(cpu)?.[1] ?? Number.NaN);
  let calls = 0;
  for (const match of stats.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)) calls += Number(match[1]);
  return { cpuUs: (field('used_cpu_user') + field('used_cpu_sys')) * 1e6, calls };
}

/** Deletes every key under `prefix` (SCAN + UNLINK in batches); bounded to 10 M keys. */
export async function deleteKeys(client: RedisClient, prefix: string): Promise<number> {
  let deleted = 0;
  for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1_000 })) {
    if (keys.length > 0) deleted += await client.unlink(keys);
    if (deleted > 10_000_000) break;
  }
  return deleted;
}
