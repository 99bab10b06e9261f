import { IdempotencyConfigError, StoreMisconfiguredError, StoreUnavailableError } from '../core/errors.js';
import { withTimeout } from '../core/store-call.js';
import { COLUMNS, schemaSql, tableName } from './postgres-schema.js';
import { type Statement, statements } from './postgres-sql.js';
import {
  openTransaction,
  type PostgresPoolClient,
  type PostgresTransactionClient,
} from './postgres-transaction.js';
import { decodeResponse, encodeResponse } from './response-codec.js';
import {
  type ClaimRequest,
  type ClaimResult,
  type IdempotencyStore,
  RecordState,
  type StoredRecord,
  type TransactionalStore,
} from './types.js';

export type { PostgresPoolClient, PostgresTransactionClient } from './postgres-transaction.js';

/** One query as the store sends it. `query_timeout` is pg's per-query client-side read timeout. */
export interface PostgresQueryConfig {
  name?: string;
  text: string;
  values?: unknown[];
  query_timeout?: number;
}

/**
 * The part of a `pg` Pool the store calls. A `pg.Pool` fits as it is; any client with this shape
 * (a pool wrapper, a tracing proxy) does too.
 */
export interface PostgresPool {
  query(config: PostgresQueryConfig): Promise<{ rows: unknown[]; rowCount: number | null }>;
  /** Needed only for transactional mode: one connection for BEGIN … COMMIT. */
  connect?(): Promise<PostgresPoolClient>;
}

/**
 * The PostgreSQL store. `beginTransaction` is there when the pool has `connect()`, which turns on
 * `createIdempotency({ transactional: true })`: handlers write through `ctx.transaction`.
 */
export type PostgresStore = IdempotencyStore &
  Partial<Pick<TransactionalStore<PostgresTransactionClient>, 'beginTransaction'>>;

export interface PostgresStoreOptions {
  /**
   * The app's pool; the store never connects, configures or ends it. Give it a
   * `connectionTimeoutMillis` (e.g. 1000) and an `'error'` listener: a query waiting for a
   * connection is not covered by pg's query timeout, so without it a request that already got a
   * 503 may still run when the database comes back.
   */
  pool: PostgresPool;
  /** @default 'idemkit_records' */
  table?: string;
  /** @default undefined (the connection's `search_path`) */
  schema?: string;
  /**
   * Per-query bound. pg gets it as `query_timeout` (it then drops the connection from the pool,
   * the server may still finish the statement), and the store races a timer of the same length,
   * which also covers the wait for a pool connection. Keep it at or above the engine's
   * `storeTimeoutMs`, so the engine's own timeout answers first.
   * @default 2_000
   */
  queryTimeoutMs?: number;
}

export interface PostgresMigrateOptions {
  pool: PostgresPool;
  /** @default 'idemkit_records' */
  table?: string;
  /** @default undefined (the connection's `search_path`) */
  schema?: string;
}

/** How often a claim re-runs when a concurrent commit hid or changed the row it saw. */
const CLAIM_ATTEMPTS = 8;
/** SQLSTATEs that mean the schema is missing or old, not that the database is down. */
const MISSING_SCHEMA = new Set(['42P01', '42703', '3F000']);

/**
 * Creates the table and its index (idempotent; safe to run from several instances at once).
 * Run it at deploy time or from `idemkit migrate`; the store never creates its schema lazily.
 * @example
 * await migrate({ pool })
 */
export async function migrate(options: PostgresMigrateOptions): Promise<void> {
  const name = tableName(options.table, options.schema);
  await options.pool.query({ text: schemaSql(name) });
}

/**
 * A store on PostgreSQL through the app's `pg` Pool: one upsert per claim, deadlines from the
 * database clock, every later write a compare-and-set on the owner token.
 * @example
 * await migrate({ pool })
 * const idem = createIdempotency({ store: postgresStore({ pool }), secret: process.env.IDEMKIT_SECRET })
 */
export function postgresStore(options: PostgresStoreOptions): PostgresStore {
  const config = Object.freeze({
    pool: options.pool,
    name: tableName(options.table, options.schema),
    queryTimeoutMs: options.queryTimeoutMs ?? 2_000,
  });
  if (!config.pool || typeof config.pool.query !== 'function') {
    throw new IdempotencyConfigError('postgresStore: pool must be a pg Pool (an object with query())');
  }
  if (!Number.isInteger(config.queryTimeoutMs) || config.queryTimeoutMs < 1) {
    throw new IdempotencyConfigError(`postgresStore: queryTimeoutMs must be a positive integer`);
  }
  const sql = statements(config.name);
  const { pool, queryTimeoutMs } = config;

  function run(
    statement: Statement,
    values: unknown[],
    onLate?: (rows: Row[]) => void,
  ): Promise<{ rows: Row[]; rowCount: number }> {
    const call = () =>
      pool.query({ name: statement.name, text: statement.text, values, query_timeout: queryTimeoutMs }).then(
        (result) => ({ rows: result.rows.filter(isRow), rowCount: result.rowCount ?? 0 }),
        (error: unknown) => Promise.reject(storeError(statement, error)),
      );
    return withTimeout(`postgres ${statement.name}`, call, queryTimeoutMs, (late) => onLate?.(late.rows));
  }

  async function write(statement: Statement, values: unknown[]): Promise<boolean> {
    return (await run(statement, values)).rowCount === 1;
  }

  const store: PostgresStore = {
    name: 'postgres',

    // See the lease timeline above ClaimResult in types.ts; the predicate is in postgres-sql.ts.
    async claim(request: ClaimRequest): Promise<ClaimResult> {
      const values = [request.key, request.fingerprint, request.token, request.leaseMs, request.retentionMs];
      // A claim answered after our timeout holds the key for a caller that already got a 503:
      // give it back at once instead of leaving it until the lease lapses.
      const releaseLate = (rows: Row[]) => {
        if (rows[0]?.acquired !== true) return;
        const release = [request.key, request.token, request.retentionMs];
        run(sql.release, release).catch(() => {});
      };
      for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
        const { rows } = await run(sql.claim, values, releaseLate);
        const row = rows[0];
        if (row?.acquired === true) return { outcome: 'acquired', generation: toInt(row.generation) };
        // No row: a concurrent claim committed after our snapshot. Takeable: the row we saw
        // changed under us. Either way the next statement's fresh snapshot decides.
        if (row === undefined || row.takeable === true) continue;
        const record = toRecord({ ...row, key: request.key });
        return { outcome: record.state === RecordState.InProgress ? 'in_progress' : 'completed', record };
      }
      throw new StoreUnavailableError(`postgres claim kept racing for ${CLAIM_ATTEMPTS} attempts`);
    },

    heartbeat: (r) => write(sql.heartbeat, [r.key, r.token, r.leaseMs, r.retentionMs]),
    complete: (r) => write(sql.complete, [r.key, r.token, encodeResponse(r.response), r.retentionMs]),
    release: (r) => write(sql.release, [r.key, r.token, r.retentionMs]),
    markUncertain: (r) => write(sql.markUncertain, [r.key, r.token, r.retentionMs]),

    async get(key: string): Promise<StoredRecord | undefined> {
      const row = (await run(sql.get, [key])).rows[0];
      return row === undefined ? undefined : toRecord(row);
    },

    delete: (key) => write(sql.delete, [key]),

    async sweep(limit: number): Promise<number> {
      return (await run(sql.sweep, [limit])).rowCount;
    },

    // A missing table or column surfaces as StoreMisconfiguredError ("run idemkit migrate").
    async check(): Promise<void> {
      await run(sql.probe, []);
    },

    // The pool is the app's; the store made nothing that needs freeing.
    async close(): Promise<void> {},
  };
  const connect = pool.connect?.bind(pool);
  if (connect) {
    store.beginTransaction = () => openTransaction(connect, sql.complete, queryTimeoutMs);
  }
  return store;
}

type Row = Record<string, unknown>;

function isRow(value: unknown): value is Row {
  return typeof value === 'object' && value !== null;
}

function storeError(statement: Statement, error: unknown): Error {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && MISSING_SCHEMA.has(code)) {
    return new StoreMisconfiguredError(
      `postgres store: ${messageOf(error)}; run idemkit migrate (or migrate({ pool })) with columns ${COLUMNS.join(', ')}`,
      { cause: error },
    );
  }
  return new StoreUnavailableError(`postgres ${statement.name} failed: ${messageOf(error)}`, {
    cause: error,
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** bigint columns arrive as strings from pg (or as numbers, when the app set a type parser). */
function toInt(value: unknown): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n)) throw new StoreUnavailableError(`postgres returned a bad integer: ${value}`);
  return n;
}

function toRecord(row: Row): StoredRecord {
  const state = row.state;
  if (typeof row.key !== 'string' || typeof state !== 'string' || typeof row.fingerprint !== 'string') {
    throw new StoreUnavailableError('postgres returned a record of an unexpected shape');
  }
  const record: StoredRecord = {
    key: row.key,
    state: state as StoredRecord['state'],
    fingerprint: row.fingerprint,
    generation: toInt(row.generation),
    leaseUntil: toInt(row.lease_until),
    expiresAt: toInt(row.expires_at),
    createdAt: toInt(row.created_at),
    completedAt: row.completed_at === null ? null : toInt(row.completed_at),
  };
  if (state === RecordState.Completed && row.response instanceof Uint8Array) {
    record.response = decodeResponse(row.response);
  }
  return record;
}
