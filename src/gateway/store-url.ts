import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { IdempotencyStore } from '../core/store.js';
import { ConfigError } from './config-error.js';
import { defaultImport, exportsOf, type ImportModule, loadDriver } from './store-url-drivers.js';
import { openDynamoDB } from './store-url-dynamodb.js';
import { parseStoreUrl, redactUrl, type StoreTarget } from './store-url-parse.js';
import { openRedis } from './store-url-redis.js';
import type { GatewayLogger } from './types.js';

export { DEFAULT_SQLITE_PATH, parseStoreUrl, redactUrl, type StoreTarget } from './store-url-parse.js';

export interface OpenStoreOptions {
  /** The fingerprint secret (`IDEMKIT_SECRET`). Required for PostgreSQL and Redis. */
  secret?: string;
  logger?: GatewayLogger;
  /**
   * Refuse a shared store without a secret. The gateway needs one (every process must sign
   * fingerprints alike); `inspect`, `purge` and `migrate` never fingerprint, so they pass false.
   * @default true
   */
  requireSecret?: boolean;
  /**
   * How long opening waits for a server (pg connection, Redis handshake). Redis that is not up by
   * then is waited for in the background: the gateway serves 503 for keyed requests meanwhile.
   * @default 2_000
   */
  connectTimeoutMs?: number;
  /** Replaces `import()` (tests play a machine without a driver). */
  importModule?: ImportModule;
}

export interface OpenedStore {
  store: IdempotencyStore;
  /** The secret to give the engine; absent for SQLite and memory, which keep their own. */
  secret?: string;
  target: StoreTarget;
  /** The URL without its password, for logs. */
  description: string;
  /** PostgreSQL and DynamoDB: creates the schema or table (`idemkit migrate`). */
  migrate?: () => Promise<void>;
  /** Closes the store, then the connection this function made (it is ours, not the user's). */
  close(): Promise<void>;
}

const SILENT: GatewayLogger = { info() {}, warn() {}, error() {}, debug() {} };
const SHARED = new Set(['postgres', 'redis', 'redis-cluster', 'dynamodb']);

/**
 * Opens the store a `--store` URL names: `sqlite:./path.db` (the default file), `memory:`,
 * `postgres://…`, `redis://…`, `redis-cluster://h:p,h:p`, `dynamodb://TABLE?region=…`. Drivers load lazily, so only the one
 * the URL needs has to be installed.
 */
export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<OpenedStore> {
  const target = parseStoreUrl(url);
  const logger = options.logger ?? SILENT;
  const importModule = options.importModule ?? defaultImport;
  const connectTimeoutMs = options.connectTimeoutMs ?? 2_000;
  if (SHARED.has(target.kind) && options.secret === undefined && options.requireSecret !== false) {
    throw new ConfigError(
      `the ${target.kind} store is shared by every gateway, so each needs the same fingerprint secret: ` +
        'set IDEMKIT_SECRET (e.g. export IDEMKIT_SECRET=$(openssl rand -base64 32)) on all of them',
    );
  }
  const description = target.kind === 'sqlite' ? `sqlite:${target.path}` : redactUrl(url);
  const opened = await openTarget(target, { logger, importModule, connectTimeoutMs });
  let closing: Promise<void> | undefined;
  return {
    store: opened.store,
    ...(options.secret === undefined ? {} : { secret: options.secret }),
    target,
    description,
    ...(opened.migrate === undefined ? {} : { migrate: opened.migrate }),
    close() {
      closing ??= opened.store.close().finally(() => opened.disconnect?.());
      return closing;
    },
  };
}

interface Opened {
  store: IdempotencyStore;
  migrate?: () => Promise<void>;
  disconnect?: () => Promise<void>;
}

interface OpenContext {
  logger: GatewayLogger;
  importModule: ImportModule;
  connectTimeoutMs: number;
}

async function openTarget(target: StoreTarget, context: OpenContext): Promise<Opened> {
  const { logger, importModule, connectTimeoutMs } = context;
  switch (target.kind) {
    case 'memory': {
      const { memoryStore } = await import('../stores/memory.js');
      const { kind: _kind, ...limits } = target;
      return { store: memoryStore({ ...limits, onWarning: (message) => logger.warn({}, message) }) };
    }
    case 'sqlite': {
      await loadDriver(['better-sqlite3'], 'the sqlite: store', importModule);
      const { sqliteStore } = await import('../stores/sqlite.js');
      await mkdir(dirname(target.path), { recursive: true });
      const store = sqliteStore({ path: target.path });
      // A local file: a wrong path or permission should stop startup, not 503 every request.
      await store.check?.().catch(async (error: unknown) => {
        await store.close();
        throw error;
      });
      return { store };
    }
    case 'postgres': {
      const { module } = await loadDriver(['pg'], 'postgres://', importModule);
      const { Pool } = exportsOf<{ Pool: new (config: object) => PgPool }>(module);
      const { migrate, postgresStore } = await import('../stores/postgres.js');
      const pool = new Pool({
        connectionString: target.url,
        connectionTimeoutMillis: connectTimeoutMs,
        max: 20,
      });
      // Idle connections whose server went away emit 'error'; unhandled, it would end the process.
      pool.on('error', (error: Error) => logger.warn({ error: error.message }, 'postgres connection lost'));
      return {
        store: postgresStore({ pool }),
        migrate: () => migrate({ pool }),
        disconnect: () => pool.end(),
      };
    }
    case 'redis':
    case 'redis-cluster': {
      const { redisStore } = await import('../stores/redis.js');
      const client = await openRedis(target, context);
      return {
        store: redisStore({ client: client.client, onWarning: (message) => logger.warn({}, message) }),
        disconnect: client.disconnect,
      };
    }
    case 'dynamodb':
      return openDynamoDB(target, context);
  }
}

interface PgPool {
  query(config: { text: string; values?: unknown[] }): Promise<{ rows: unknown[]; rowCount: number | null }>;
  on(event: 'error', listener: (error: Error) => void): unknown;
  end(): Promise<void>;
}
