import { IdempotencyConfigError, StoreUnavailableError } from '../core/errors.js';
import {
  type ClaimRequest,
  type ClaimResult,
  type IdempotencyStore,
  RecordState,
  type StoredRecord,
  type TransactionalStore,
} from '../core/store.js';
import { withTimeout } from '../core/store-call.js';
import { settingsWarner } from './postgres-check.js';
import { postgresSettleChannel, type SettleChannel, settleChannel } from './postgres-listen.js';
import { isRow, type Row, sqlstateOf, storeError, toInt, toRecord } from './postgres-rows.js';
import { schemaSql, tableName } from './postgres-schema.js';
import { type Statement, statements } from './postgres-sql.js';
import {
  ISOLATION_LEVELS,
  type IsolationLevel,
  openTransaction,
  type PostgresPoolClient,
  type PostgresTransactionClient,
} from './postgres-transaction.js';
import { encodeResponse } from './response-codec.js';

export type {
  IsolationLevel,
  PostgresPoolClient,
  PostgresTransactionClient,
} from './postgres-transaction.js';

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
  /**
   * How long a claim waits for the record's row lock. In transactional mode the owner holds that
   * lock from its completion until COMMIT (a partitioned host: until the server drops it); a
   * duplicate then gets `in_progress` (409 with Retry-After) after this long instead of waiting
   * out `queryTimeoutMs` for a 503. Keep it well below the engine's `storeTimeoutMs`.
   * @default 200
   */
  lockTimeoutMs?: number;
  /**
   * The isolation level transactional-mode transactions are opened with. Use `'read committed'`
   * when the database default is stricter: at REPEATABLE READ or SERIALIZABLE a handler running
   * longer than a third of the lease fails its COMMIT against its own heartbeat (503).
   * @default undefined (the connection's `default_transaction_isolation`)
   */
  isolationLevel?: IsolationLevel;
  /**
   * Receives the startup warning about server settings (`lock_timeout` or
   * `idle_in_transaction_session_timeout` off, transactions above READ COMMITTED) once the store
   * is used transactionally.
   * @default process.emitWarning
   */
  onWarning?: (message: string) => void;
  /**
   * Wakes duplicates waiting in other processes (`wait` mode) as soon as the first request
   * settles, instead of leaving them to poll. The settling writes send `pg_notify` in the same
   * statement, and the first wait in a process checks one connection out of the pool for
   * `LISTEN` (held until `close()`; the pool needs `connect()`). Off by default: PostgreSQL takes
   * a cluster-wide lock while a transaction that notified commits, which serialises every
   * completion's commit, and a `LISTEN` session does not survive PgBouncer in transaction
   * pooling. Turn it on in every process that shares the table.
   * @default false
   */
  notify?: boolean;
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
/** lock_not_available: the claim's `lock_timeout` ran out on the record's row lock. */
const LOCK_TIMEOUT = '55P03';
/** How many lock timeouts one claim sits out before it reports the store as unavailable. */
const LOCK_WAITS = 2;
/**
 * serialization_failure and deadlock_detected: at REPEATABLE READ or SERIALIZABLE (a pool whose
 * default_transaction_isolation is raised) a claim that met a concurrent update fails whole;
 * the next statement's fresh snapshot decides (F12).
 */
const RETRY_STATES = new Set(['40001', '40P01']);

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
    lockTimeoutMs: options.lockTimeoutMs ?? 200,
    isolationLevel: options.isolationLevel,
    onWarning: options.onWarning ?? ((m: string) => process.emitWarning(m, 'IdemkitWarning')),
  });
  if (!config.pool || typeof config.pool.query !== 'function') {
    throw new IdempotencyConfigError('postgresStore: pool must be a pg Pool (an object with query())');
  }
  if (!Number.isInteger(config.queryTimeoutMs) || config.queryTimeoutMs < 1) {
    throw new IdempotencyConfigError(`postgresStore: queryTimeoutMs must be a positive integer`);
  }
  const { pool, queryTimeoutMs, lockTimeoutMs } = config;
  if (!Number.isInteger(lockTimeoutMs) || lockTimeoutMs < 1 || lockTimeoutMs >= queryTimeoutMs) {
    throw new IdempotencyConfigError(
      `postgresStore: lockTimeoutMs must be a positive integer below queryTimeoutMs (${queryTimeoutMs}), got ${lockTimeoutMs}`,
    );
  }
  if (config.isolationLevel !== undefined && !ISOLATION_LEVELS.includes(config.isolationLevel)) {
    throw new IdempotencyConfigError(
      `postgresStore: isolationLevel must be one of ${ISOLATION_LEVELS.join(', ')}, got ${config.isolationLevel}`,
    );
  }
  const connectForListen = options.notify === true ? pool.connect?.bind(pool) : undefined;
  const channelName = options.notify === true ? settleChannel(config.name) : undefined;
  const sql = statements(config.name, channelName);
  let settleListen: SettleChannel | undefined;
  const lockBound = `${lockTimeoutMs}ms`;
  const settings = settingsWarner(config.onWarning, config.isolationLevel);

  function run(
    statement: Statement,
    values: unknown[],
    onLate?: (rows: Row[]) => void,
  ): Promise<{ rows: Row[]; rowCount: number }> {
    const call = () =>
      pool.query({ name: statement.name, text: statement.text, values, query_timeout: queryTimeoutMs }).then(
        (result) => ({ rows: result.rows.filter(isRow), rowCount: result.rowCount ?? 0 }),
        (error: unknown) => Promise.reject(storeError(statement.name, error)),
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
      const { key, fingerprint, token, leaseMs, retentionMs } = request;
      const values = [key, fingerprint, token, leaseMs, retentionMs, lockBound];
      // A claim answered after our timeout holds the key for a caller that already got a 503:
      // give it back at once instead of leaving it until the lease lapses.
      const releaseLate = (rows: Row[]) => {
        if (rows[0]?.acquired !== true) return;
        run(sql.release, [key, token, retentionMs]).catch(() => {});
      };
      let lockWaits = 0;
      for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
        let rows: Row[];
        try {
          rows = (await run(sql.claim, values, releaseLate)).rows;
        } catch (error) {
          const code = sqlstateOf(error);
          if (code !== undefined && RETRY_STATES.has(code)) continue;
          if (code !== LOCK_TIMEOUT || ++lockWaits > LOCK_WAITS) throw error;
          // An open transaction holds the row: in transactional mode, an owner between its
          // completion and COMMIT. Until that COMMIT lands the committed record is in_progress,
          // and in_progress is the answer (409, retry later), even past the lease: the holder may
          // still commit, so nobody may take over. Any other committed state means the holder
          // was something else (a sweep, a short write) that is about to change the row: ask again
          // rather than decide from it.
          const held = await store.get(key);
          if (held?.state === RecordState.InProgress) return { outcome: 'in_progress', record: held };
          continue;
        }
        const row = rows[0];
        if (row?.acquired === true) return { outcome: 'acquired', generation: toInt(row.generation) };
        // No row: a concurrent claim committed after our snapshot. Takeable: the row we saw
        // changed under us. Either way the next statement's fresh snapshot decides.
        if (row === undefined || row.takeable === true) continue;
        const record = toRecord({ ...row, key });
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

    // A missing table or column surfaces as StoreMisconfiguredError ("run idemkit migrate");
    // unsafe transaction settings are warned about once the store is used transactionally.
    async check(): Promise<void> {
      settings.checked((await run(sql.probe, [])).rows[0]);
    },

    // The pool is the app's; the store frees only the LISTEN connection it checked out.
    async close(): Promise<void> {
      settleListen?.close();
    },
  };
  if (connectForListen && channelName) {
    const channel = channelName;
    store.onSettled = (key, listener) => {
      settleListen ??= postgresSettleChannel(connectForListen, channel, queryTimeoutMs);
      return settleListen.onSettled(key, listener);
    };
  }
  const connect = pool.connect?.bind(pool);
  if (connect) {
    store.beginTransaction = () => {
      settings.transactionBegun();
      return openTransaction(connect, sql.complete, queryTimeoutMs, config.isolationLevel);
    };
  }
  return store;
}
