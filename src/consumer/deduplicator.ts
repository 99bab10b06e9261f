import type { HandlerContext } from '../core/decision.js';
import { createIdempotency, type Idempotency } from '../core/engine.js';
import { IdempotencyConfigError, InFlightError } from '../core/errors.js';
import type { IdempotencyEvent } from '../core/events.js';
import type { VersionedSecret } from '../core/fingerprint.js';
import type { IdempotencyStore } from '../core/store.js';

export interface DeduplicatorOptions {
  /** Where processed ids are kept; give this or `engine`. */
  store?: IdempotencyStore;
  /** An engine you already have (its store, secret and events); give this or `store`. */
  engine?: Idempotency;
  /**
   * How long a processed id is remembered, counted from completion. Pick more than the longest
   * redelivery window of the sender or broker (Stripe retries for 3 days). @default 259_200_000 (3 days)
   */
  retentionMs?: number;
  /** The fingerprint secret; required for stores shared across hosts (PostgreSQL, Redis). */
  secret?: string | readonly VersionedSecret[];
  /** The lease of a running handler, renewed while it runs. @default the engine's (30 s) */
  leaseMs?: number;
  /**
   * How long a duplicate that arrives while the first delivery still runs waits for its
   * result; 0 throws `RedeliverLaterError` at once, so the broker redelivers later. @default 0
   */
  waitMs?: number;
  /** Telemetry, when the deduplicator makes its own engine. */
  onEvent?: (event: IdempotencyEvent) => void;
}

/** One delivery: where it comes from, and the sender's id of the event or message. */
export interface Delivery {
  /** The sender, topic or queue (`stripe`, `orders.created`): ids of two sources never meet. */
  source: string;
  id: string;
  /**
   * Optional: what the event says, for a check that a reused id carries the same event (a
   * mismatch throws `KeyReusedError`). Leave it out when the sender's ids are trusted.
   */
  payload?: unknown;
}

export interface OnceResult<T> {
  /** `processed`: fn ran now; `duplicate`: an earlier delivery ran it, `result` is its result. */
  status: 'processed' | 'duplicate';
  result: T;
}

export interface Deduplicator {
  /**
   * Runs `fn` once per (source, id) within retention. A duplicate gets the first run's result;
   * a failed `fn` is not marked processed (the error passes through, a redelivery runs it
   * again); a duplicate while the first still runs throws `RedeliverLaterError`.
   */
  once<T>(delivery: Delivery, fn: (ctx: HandlerContext) => T | Promise<T>): Promise<OnceResult<T>>;
  /** The engine underneath (shared with HTTP if you passed one). */
  readonly engine: Idempotency;
  /** Stops the engine's sweeper if the deduplicator made it. The store is yours to close. */
  close(): Promise<void>;
}

/**
 * A duplicate arrived while the first delivery is still being handled: nack / requeue it and
 * let the broker redeliver after `retryAfterMs` (it then gets the result, or runs if the first
 * failed). The same class the engine throws: `InFlightError`.
 */
export const RedeliverLaterError = InFlightError;
export type RedeliverLaterError = InFlightError;

const THREE_DAYS_MS = 3 * 24 * 60 * 60 * 1_000;
/** The principal of every consumer record: keeps them apart from an app's own run() calls. */
const CONSUMER_PRINCIPAL = 'idemkit:consumer';

/**
 * Exactly-once handling for webhook and queue consumers on the engine's operation call: the
 * same stores, leases, heartbeats and fencing as the HTTP path.
 * @example
 * const dedup = createDeduplicator({ store: sqliteStore({ path: 'events.db' }) })
 * await dedup.once({ source: 'stripe', id: event.id }, () => fulfil(event))
 */
export function createDeduplicator(options: DeduplicatorOptions): Deduplicator {
  const retentionMs = options.retentionMs ?? THREE_DAYS_MS;
  if (!Number.isInteger(retentionMs) || retentionMs < 1) {
    throw new IdempotencyConfigError(`retentionMs: expected a positive integer, got ${String(retentionMs)}`);
  }
  const waitMs = options.waitMs ?? 0;
  const ownsEngine = options.engine === undefined;
  const engine = options.engine ?? ownEngine(options, retentionMs);

  return {
    engine,
    async once<T>(delivery: Delivery, fn: (ctx: HandlerContext) => T | Promise<T>): Promise<OnceResult<T>> {
      const { source, id } = delivery;
      if (typeof source !== 'string' || source === '') {
        throw new IdempotencyConfigError('once(): source must be a non-empty string');
      }
      if (typeof id !== 'string' || id === '')
        throw new IdempotencyConfigError('once(): id must be a non-empty string');
      let ran = false;
      const result = await engine.run(
        {
          operation: source,
          key: id,
          principal: CONSUMER_PRINCIPAL,
          params: delivery.payload ?? null,
          retentionMs,
          wait: waitMs,
          ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
        },
        function handleDelivery(ctx) {
          ran = true;
          return fn(ctx);
        },
      );
      return { status: ran ? 'processed' : 'duplicate', result };
    },
    async close() {
      if (ownsEngine) await engine.close();
    },
  };
}

function ownEngine(options: DeduplicatorOptions, retentionMs: number): Idempotency {
  if (!options.store) throw new IdempotencyConfigError('createDeduplicator: pass store (or engine)');
  return createIdempotency({
    store: options.store,
    retentionMs,
    ...(options.secret === undefined ? {} : { secret: options.secret }),
    ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
    ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
  });
}
