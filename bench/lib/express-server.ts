/**
 * The server under test of `npm run bench -- express`, in its own (pinned) child process:
 * `node --import tsx bench/lib/express-server.ts '<json ExpressChildConfig>'`. Bare Express, or
 * Express with the idemkit engine glued in by hand over the memory or the Redis store, on
 * 127.0.0.1. Speaks child-side.ts's IPC (ready, CPU probes, stop).
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import type { IdempotencyStore } from '../../src/stores/types.js';
import { childRedisStore } from './child-redis-store.js';
import { childSide } from './child-side.js';
import { chargesApp } from './express-app.js';
import {
  BENCH_RETENTION_MS,
  EXPRESS_VARIANTS,
  type ExpressChildConfig,
  type ExpressVariant,
} from './express-variants.js';

const config = JSON.parse(process.argv[2] ?? '{}') as ExpressChildConfig;
const { send, cleanups, fail } = childSide();
const libRoot = pathToFileURL(`${config.lib.dir}/`);
const load = <T>(module: string): Promise<T> =>
  import(new URL(module + config.lib.ext, libRoot).href) as Promise<T>;

async function main(): Promise<void> {
  const variant = EXPRESS_VARIANTS.find((v) => v.name === config.variant);
  if (!variant) throw new Error(`unknown variant ${config.variant}`);
  if (variant.store === 'none') {
    send({ type: 'ready', url: await listen(chargesApp()) });
    return;
  }
  const [{ createIdempotency }, { problemResponse }] = await Promise.all([
    load<typeof import('../../src/core/engine.js')>('core/engine'),
    load<typeof import('../../src/core/problem.js')>('core/problem'),
  ]);
  const store = await openStore(variant);
  if (!store) return;
  const engine = createIdempotency({
    store,
    retentionMs: BENCH_RETENTION_MS,
    onWarning() {},
    // Redis is shared between processes, so it takes the app's secret (the memory store keeps its own).
    ...(variant.store === 'redis' ? { secret: randomBytes(32).toString('base64url') } : {}),
  });
  cleanups.unshift(() => engine.close());
  const app = chargesApp({ engine, problem: problemResponse, maxBodyBytes: engine.options.maxBodyBytes });
  send({ type: 'ready', url: await listen(app) });
}

/** The variant's store; `undefined` once `unavailable` was sent. Cleanups close it (and its client). */
async function openStore(variant: ExpressVariant): Promise<IdempotencyStore | undefined> {
  if (variant.store === 'memory') {
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
  return childRedisStore({ send, cleanups }, load, config.redis);
}

/** Listens on 127.0.0.1 (an ephemeral port); the server closes first on stop. */
async function listen(app: ReturnType<typeof chargesApp>): Promise<string> {
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  cleanups.unshift(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

main().catch(fail);
