/**
 * The server under test of `npm run bench -- adapters`, in its own (pinned) child process:
 * `node --import tsx bench/lib/adapter-server.ts '<json AdapterChildConfig>'`. One framework,
 * bare or with idemkit's adapter over the memory or the Redis store, on 127.0.0.1. Speaks
 * child-side.ts's IPC (ready, CPU probes, stop).
 */
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import type { IdempotencyStore } from '../../src/core/store.js';
import { type AdapterModules, APPS } from './adapter-apps.js';
import { type AdapterChildConfig, BENCH_RETENTION_MS } from './adapter-variants.js';
import { childRedisStore } from './child-redis-store.js';
import { childSide } from './child-side.js';

const config = JSON.parse(process.argv[2] ?? '{}') as AdapterChildConfig;
const { send, cleanups, fail } = childSide();
const libRoot = pathToFileURL(`${config.lib.dir}/`);
const load = <T>(module: string): Promise<T> =>
  import(new URL(module + config.lib.ext, libRoot).href) as Promise<T>;

async function main(): Promise<void> {
  const { variant } = config;
  const app = APPS[variant.framework];
  if (variant.store === 'none') {
    const served = await app(undefined);
    cleanups.unshift(() => served.close());
    send({ type: 'ready', url: served.url });
    return;
  }
  const store = await openStore(variant.store);
  if (!store) return;
  const [{ createIdempotency }, modules] = await Promise.all([
    load<typeof import('../../src/core/engine.js')>('core/engine'),
    loadAdapters(),
  ]);
  const engine = createIdempotency({
    store,
    retentionMs: BENCH_RETENTION_MS,
    onWarning() {},
    ...(config.storeTimeoutMs === undefined ? {} : { storeTimeoutMs: config.storeTimeoutMs }),
    // Redis is shared between processes, so it takes the app's secret (the memory store keeps its own).
    ...(variant.store === 'redis' ? { secret: randomBytes(32).toString('base64url') } : {}),
  });
  cleanups.unshift(() => engine.close());
  const served = await app({ engine, modules });
  cleanups.unshift(() => served.close());
  send({ type: 'ready', url: served.url });
}

async function loadAdapters(): Promise<AdapterModules> {
  const [express, fastify, koa, hono, nestjs] = await Promise.all([
    load<AdapterModules['express']>('adapters/express'),
    load<AdapterModules['fastify']>('adapters/fastify'),
    load<AdapterModules['koa']>('adapters/koa'),
    load<AdapterModules['hono']>('adapters/hono'),
    load<AdapterModules['nestjs']>('adapters/nestjs'),
  ]);
  return { express, fastify, koa, hono, nestjs };
}

/** The variant's store; `undefined` once `unavailable` was sent. Cleanups close it (and its client). */
async function openStore(kind: 'memory' | 'redis'): Promise<IdempotencyStore | undefined> {
  if (kind === 'memory') {
    const { memoryStore } = await load<typeof import('../../src/stores/memory.js')>('stores/memory');
    const store = memoryStore({
      maxEntries: config.maxEntries,
      maxEntriesPerPrincipal: config.maxEntries,
      // The bench measures cost, not the store's limits: one principal, every record kept.
      maxBytes: 4 * 1024 ** 3,
      onWarning() {},
    });
    cleanups.push(() => store.close());
    return store;
  }
  if (!config.redis) throw new Error('a redis variant needs config.redis');
  return childRedisStore({ send, cleanups }, load, config.redis, config.storeTimeoutMs);
}

main().catch(fail);
