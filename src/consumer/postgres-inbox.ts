import type { HandlerContext } from '../core/decision.js';
import { createIdempotency, type Idempotency } from '../core/engine.js';
import { IdempotencyConfigError } from '../core/errors.js';
import type { IdempotencyEvent } from '../core/events.js';
import type { VersionedSecret } from '../core/fingerprint.js';
import {
  migrate,
  type PostgresPool,
  type PostgresPoolClient,
  type PostgresTransactionClient,
  postgresStore,
} from '../stores/postgres.js';
import { createDeduplicator, type Delivery, type OnceResult } from './deduplicator.js';

/*
 * The transactional inbox is the deduplicator on a transactional PostgreSQL engine, with a name:
 *
 *   claim (autocommit) ─ BEGIN ─ handler: ctx.query(…) ─ processed record (CAS) ─ COMMIT
 *
 * The handler's writes and the processed record commit in one transaction or not at all; a crash
 * before COMMIT leaves neither, and the id's lease lets the next redelivery take it over.
 */

/** A `pg` Pool as far as the inbox uses it: `query()` for the record, `connect()` for the transaction. */
export interface PostgresInboxPool extends PostgresPool {
  connect(): Promise<PostgresPoolClient>;
}

export interface PostgresInboxOptions {
  /** The app's pool (a `pg.Pool` fits); the inbox never ends it. */
  pool: PostgresInboxPool;
  /** The fingerprint secret: the same in every process that shares the table. */
  secret: string | readonly VersionedSecret[];
  /** The table of processed ids; create it with `inbox.migrate()` or `idemkit migrate`. @default 'idemkit_records' */
  table?: string;
  /** @default undefined (the connection's `search_path`) */
  schema?: string;
  /**
   * How long a processed id is remembered, counted from completion; more than the sender's or
   * broker's redelivery window. @default 259_200_000 (3 days)
   */
  retentionMs?: number;
  /**
   * How long a handler holds the id while it runs (renewed while it runs); a process that died
   * mid-handler gives the id to the next redelivery after this long. @default 30_000
   */
  leaseMs?: number;
  /** How long a duplicate waits for the first delivery's result; 0 throws `RedeliverLaterError`. @default 0 */
  waitMs?: number;
  /** Telemetry of the engine underneath. */
  onEvent?: (event: IdempotencyEvent) => void;
  /** Receives the store's startup warnings about server settings. @default process.emitWarning */
  onWarning?: (message: string) => void;
}

/** What the handler gets: the usual context, plus queries inside the record's transaction. */
export interface InboxContext extends HandlerContext {
  /** Runs a query in the transaction that also writes the processed record. */
  query(
    text: string,
    values?: unknown[],
  ): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>;
  /** The same transaction as a client with `query()`. */
  readonly transaction: PostgresTransactionClient;
}

export interface PostgresInbox {
  /**
   * Runs `fn` once per (source, id): its writes through `ctx.query` commit with the processed
   * record, or not at all. A duplicate gets the first result; a failed `fn` leaves no write and no
   * record (the redelivery runs it again); a duplicate while the first runs throws
   * `RedeliverLaterError`.
   */
  once<T>(delivery: Delivery, fn: (ctx: InboxContext) => T | Promise<T>): Promise<OnceResult<T>>;
  /** Creates the table of processed ids if it is missing (safe to run from several processes). */
  migrate(): Promise<void>;
  /** The engine underneath, for `storeHealthy()` or to share with HTTP routes. */
  readonly engine: Idempotency;
  /** Stops the engine's sweeper. The pool is yours to end. */
  close(): Promise<void>;
}

/**
 * A transactional inbox on PostgreSQL: each delivery is handled once, and the handler's writes
 * commit in the same transaction as the record that marks the delivery processed.
 * @example
 * const inbox = createPostgresInbox({ pool, secret: process.env.IDEMKIT_SECRET })
 * await inbox.migrate()
 * await inbox.once({ source: 'orders', id: msg.id }, (ctx) =>
 *   ctx.query('INSERT INTO shipments (order_id) VALUES ($1)', [msg.orderId]))
 */
export function createPostgresInbox(options: PostgresInboxOptions): PostgresInbox {
  const pool = options.pool;
  if (!pool || typeof pool.query !== 'function' || typeof pool.connect !== 'function') {
    throw new IdempotencyConfigError(
      'createPostgresInbox: pool must be a pg Pool (with query() and connect())',
    );
  }
  const location = {
    ...(options.table === undefined ? {} : { table: options.table }),
    ...(options.schema === undefined ? {} : { schema: options.schema }),
  };
  const store = postgresStore({
    pool,
    ...location,
    ...(options.onWarning === undefined ? {} : { onWarning: options.onWarning }),
  });
  const engine = createIdempotency({
    store,
    secret: options.secret,
    transactional: true,
    ...(options.retentionMs === undefined ? {} : { retentionMs: options.retentionMs }),
    ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
    ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
    ...(options.onWarning === undefined ? {} : { onWarning: options.onWarning }),
  });
  const dedup = createDeduplicator({
    engine,
    ...(options.retentionMs === undefined ? {} : { retentionMs: options.retentionMs }),
    ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
    ...(options.waitMs === undefined ? {} : { waitMs: options.waitMs }),
  });

  return {
    engine,
    once<T>(delivery: Delivery, fn: (ctx: InboxContext) => T | Promise<T>): Promise<OnceResult<T>> {
      return dedup.once(delivery, (ctx) => fn(inboxContext(ctx)));
    },
    migrate: () => migrate({ pool, ...location }),
    close: () => engine.close(),
  };
}

function inboxContext(ctx: HandlerContext): InboxContext {
  const transaction = ctx.transaction as PostgresTransactionClient;
  return {
    get signal() {
      return ctx.signal;
    },
    get fencingToken() {
      return ctx.fencingToken;
    },
    downstreamKey: () => ctx.downstreamKey(),
    effectsStarted: () => ctx.effectsStarted(),
    transaction,
    query: (text, values) => transaction.query(text, values),
  };
}
