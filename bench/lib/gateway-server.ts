/**
 * The proxy under test of `npm run bench -- gateway`, in its own (pinned) child process:
 * `node --import tsx bench/lib/gateway-server.ts '<json GatewayChildConfig>'`. Either the bare
 * pass-through proxy (undici, no idemkit: the baseline) or `startGateway()` with one store, in
 * front of the upstream child, on 127.0.0.1. Speaks child-side.ts's IPC (ready, CPU probes, stop).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Dispatcher, Pool } from 'undici';
import { HOP_BY_HOP } from '../../src/gateway/proxy.js';
import type { IdempotencyStore } from '../../src/stores/types.js';
import { childRedisStore } from './child-redis-store.js';
import { childSide } from './child-side.js';
import {
  BENCH_RETENTION_MS,
  GATEWAY_VARIANTS,
  type GatewayChildConfig,
  type GatewayVariant,
} from './gateway-variants.js';

const config = JSON.parse(process.argv[2] ?? '{}') as GatewayChildConfig;
const { send, cleanups, fail } = childSide();
const libRoot = pathToFileURL(`${config.lib.dir}/`);
const load = <T>(module: string): Promise<T> =>
  import(new URL(module + config.lib.ext, libRoot).href) as Promise<T>;

async function main(): Promise<void> {
  const variant = GATEWAY_VARIANTS.find((v) => v.name === config.variant);
  if (!variant) throw new Error(`unknown variant ${config.variant}`);
  if (variant.store === 'none') {
    send({ type: 'ready', url: await bareProxy(config.upstream, variant.name === 'bare-buffered') });
    return;
  }
  const [{ startGateway }, { GATEWAY_DEFAULTS }] = await Promise.all([
    load<typeof import('../../src/gateway/server.js')>('gateway/server'),
    load<typeof import('../../src/gateway/types.js')>('gateway/types'),
  ]);
  const opened = await openStore(variant);
  if (!opened) return;
  const gateway = await startGateway({
    config: {
      ...GATEWAY_DEFAULTS,
      upstream: config.upstream,
      port: 0,
      adminPort: 0,
      store: opened.url,
      retentionMs: BENCH_RETENTION_MS,
      replayHeaders: [],
      routes: [],
      logLevel: 'silent',
      ...(config.storeTimeoutMs === undefined ? {} : { storeTimeoutMs: config.storeTimeoutMs }),
      // Shared stores need one secret in every process (as with IDEMKIT_SECRET); the others keep their own.
      ...(variant.store === 'redis' ? { secret: randomBytes(32).toString('base64url') } : {}),
    },
    store: opened.store,
    engine: { onWarning() {} },
  });
  // The gateway closes first (drains), then the store, then the store's connection.
  cleanups.unshift(() => gateway.close());
  send({ type: 'ready', url: gateway.url });
}

/** The store of a variant, opened as the CLI would; `undefined` once `unavailable` was sent. */
async function openStore(
  variant: GatewayVariant,
): Promise<{ store: IdempotencyStore; url: string } | undefined> {
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
    return { store, url: 'memory:' };
  }
  if (variant.store === 'sqlite') {
    let sqliteStore: typeof import('../../src/stores/sqlite.js')['sqliteStore'];
    try {
      ({ sqliteStore } = await load<typeof import('../../src/stores/sqlite.js')>('stores/sqlite'));
    } catch (error) {
      send({ type: 'unavailable', reason: `the SQLite store does not load (${(error as Error).message})` });
      return undefined;
    }
    // A fresh file per run, in a temp directory removed on exit.
    const dir = mkdtempSync(join(tmpdir(), 'idemkit-bench-gw-'));
    const path = join(dir, 'bench.db');
    const store = sqliteStore({ path }, { synchronous: variant.synchronous ?? 'FULL' });
    cleanups.push(
      () => store.close(),
      () => rmSync(dir, { recursive: true, force: true }),
    );
    return { store, url: `sqlite:${path}` };
  }
  if (!config.redis) throw new Error('a redis variant needs config.redis');
  const store = await childRedisStore({ send, cleanups }, load, config.redis, config.storeTimeoutMs);
  return store && { store, url: config.redis.url };
}

function endToEnd(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

/**
 * The baseline: a bare pass-through reverse proxy on undici, no idemkit. The same pool settings
 * as the gateway's upstream (proxy.ts); it forwards method, path, end-to-end headers and the
 * request body as a stream, and streams the answer back (`Pool.stream`, undici's way to pipe an
 * answer into a writable; `stream.pipeline()` would cost an AbortController and an AbortError
 * DOMException per request, more than doubling this proxy's CPU per request).
 *
 * `buffered`: reads the whole request body first and the whole answer (`Pool.request`, then
 * `arrayBuffer()`) before writing it out, as the gateway's covered path does. Returns the URL.
 */
async function bareProxy(origin: string, buffered: boolean): Promise<string> {
  const pool = new Pool(origin, {
    connections: 256,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
    connectTimeout: 10_000,
  });
  const failed = (res: ServerResponse) => () => {
    if (res.headersSent) res.destroy();
    else res.writeHead(502).end();
  };
  const streaming = (req: IncomingMessage, res: ServerResponse) => {
    const method = (req.method ?? 'GET') as Dispatcher.HttpMethod;
    // The answer's body is written straight into `res`, which undici then ends.
    pool
      .stream(
        {
          path: req.url ?? '/',
          method,
          headers: endToEnd(req.headers),
          body: method === 'GET' || method === 'HEAD' ? null : req,
        },
        ({ statusCode, headers }) => {
          res.writeHead(statusCode, endToEnd(headers));
          return res;
        },
      )
      .catch(failed(res));
  };
  const buffering = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => {
      pool
        .request({
          path: req.url ?? '/',
          method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
          headers: endToEnd(req.headers),
          body: Buffer.concat(chunks),
        })
        .then(async (response) => {
          const body = Buffer.from(await response.body.arrayBuffer());
          res.writeHead(response.statusCode, endToEnd(response.headers));
          res.end(body);
        })
        .catch(failed(res));
    });
  };
  const server = createServer(buffered ? buffering : streaming);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
    () => pool.close(),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

main().catch(fail);
