import { type Context, context, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ClaimResult, IdempotencyStore, StoreTransaction } from '../core/store.js';
import { ATTR, METRIC_STORE_DURATION, REQUEST_SPAN, spanStore } from './names.js';
import { type TelemetryOptions, telemetryOf } from './telemetry.js';

/** The store contract's calls; everything else (check, close, transactions…) passes through. */
const TIMED = new Set([
  'claim',
  'heartbeat',
  'complete',
  'release',
  'markUncertain',
  'get',
  'delete',
  'sweep',
]);

/** Writes that end an owner's hold on a key: after their answer the owner token means nothing. */
const FINAL = new Set(['complete', 'release', 'markUncertain', 'commit']);

/** Store call latency buckets in seconds, sub-millisecond (memory, Redis) to seconds (a timeout). */
export const STORE_SECONDS_BUCKETS = Object.freeze([
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
]);

/** How many owner tokens are remembered at most (an execution whose final write failed stays). */
const MAX_OWNERS = 10_000;

/**
 * The store with a child span per call (`idemkit.store claim` …, under the active request span)
 * and the `idemkit.store.operation.duration` histogram (seconds; `error.type` on failures).
 * A Proxy, so optional parts of the store (settle notifications) stay as they are. In
 * transactional mode `beginTransaction` and the transaction's `commit` and `rollback` get spans
 * too (`idemkit.store begin`, `commit`, `rollback`).
 *
 * Calls made under an acquired claim carry its owner token (heartbeat, complete, release,
 * markUncertain), and their parent is the context the claim was made in. Not the active
 * context: the engine beats every execution's heartbeat from one shared timer, which runs in
 * whatever context started it, i.e. some other request's.
 */
export function instrumentStore<S extends IdempotencyStore>(store: S, options: TelemetryOptions = {}): S {
  const t = telemetryOf(options);
  const duration = t.meter.createHistogram(METRIC_STORE_DURATION, {
    description: 'Duration of idemkit store calls',
    unit: 's',
    // The SDK's default boundaries (0, 5, 10, … 10 000) are for milliseconds: every store call
    // would land in the first bucket. These are the gateway's Prometheus buckets.
    advice: { explicitBucketBoundaries: [...STORE_SECONDS_BUCKETS] },
  });
  const owners = new Map<string, Context>();
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      const operation = property === 'beginTransaction' ? 'begin' : timedName(property);
      if (operation === undefined) return value;
      let fn = wrapped.get(property);
      if (!fn) {
        fn = timed(operation, value as (...args: unknown[]) => Promise<unknown>, target);
        wrapped.set(property, fn);
      }
      return fn;
    },
  });

  /**
   * `call` (a method of `self`) with a span and a duration. `within`: the parent and key of a
   * transaction's calls, fixed when it began (its rollback carries neither).
   */
  function timed(
    operation: string,
    call: (...args: unknown[]) => Promise<unknown>,
    self: object,
    within?: { parent: Context; key: string | undefined },
  ) {
    const attributes = { [ATTR.storeOperation]: operation, [ATTR.storeName]: store.name };
    return (...args: unknown[]): Promise<unknown> => {
      const { token, ...named } = identify(args[0]);
      const key = named.key ?? within?.key;
      const parent =
        within?.parent ?? (token === undefined ? undefined : owners.get(token)) ?? context.active();
      const span = t.tracer.startSpan(spanStore(operation), { kind: SpanKind.CLIENT, attributes }, parent);
      if (key !== undefined) {
        span.setAttribute(ATTR.keyHash, key);
        if (operation === 'claim') requestSpanOf(parent)?.setAttribute(ATTR.keyHash, key);
      }
      const started = performance.now();
      const done = (error?: unknown) => {
        const errorType = error === undefined ? undefined : error instanceof Error ? error.name : 'error';
        duration.record(
          (performance.now() - started) / 1_000,
          errorType ? { ...attributes, [ATTR.errorType]: errorType } : attributes,
        );
        if (errorType) {
          span.setStatus({ code: SpanStatusCode.ERROR });
          span.setAttribute(ATTR.errorType, errorType);
        }
        span.end();
      };
      let pending: Promise<unknown>;
      try {
        // Inside the store span: a driver's own instrumentation (pg, ioredis) nests under it.
        pending = context.with(trace.setSpan(parent, span), () => call.apply(self, args));
      } catch (error) {
        done(error);
        return Promise.reject(error);
      }
      return pending.then(
        (value) => {
          if (token !== undefined) follow(operation, token, value, parent, span);
          done();
          return operation === 'begin' ? transaction(value as StoreTransaction, parent, key) : value;
        },
        (error: unknown) => {
          done(error);
          throw error;
        },
      );
    };
  }

  /** The transaction the handler writes through, its commit and rollback timed under the request. */
  function transaction(tx: StoreTransaction, parent: Context, key: string | undefined): StoreTransaction {
    const within = { parent, key };
    const commit = timed('commit', tx.commit as (...args: unknown[]) => Promise<unknown>, tx, within);
    const rollback = timed('rollback', tx.rollback as (...args: unknown[]) => Promise<unknown>, tx, within);
    return new Proxy(tx, {
      get(target, property, receiver) {
        if (property === 'commit') return commit;
        if (property === 'rollback') return rollback;
        return Reflect.get(target, property, receiver);
      },
    });
  }

  /** Keeps (or forgets) the context an owner token's later calls belong to. */
  function follow(operation: string, token: string, value: unknown, parent: Context, span: Span): void {
    if (operation === 'claim') {
      const result = value as ClaimResult;
      span.setAttribute('idemkit.claim.outcome', result.outcome);
      if (result.outcome !== 'acquired') return;
      if (owners.size >= MAX_OWNERS) owners.delete(owners.keys().next().value as string);
      owners.set(token, parent);
    } else if (FINAL.has(operation) || value === false) {
      // Written, released, or no longer the owner (a heartbeat or write refused: lease lost).
      owners.delete(token);
    }
  }
}

function timedName(property: string | symbol): string | undefined {
  return typeof property === 'string' && TIMED.has(property) ? property : undefined;
}

/**
 * The store key and owner token of a call, from its first argument: a request object for the
 * writes, the key itself for `get` and `delete`. The key is already a hash of the scope.
 */
function identify(first: unknown): { key?: string; token?: string } {
  if (typeof first === 'string') return { key: first };
  if (typeof first !== 'object' || first === null) return {};
  const { key, token } = first as { key?: unknown; token?: unknown };
  return {
    ...(typeof key === 'string' ? { key } : {}),
    ...(typeof token === 'string' ? { token } : {}),
  };
}

/**
 * The request span a store call was made for, when it is idemkit's own (not, say, an HTTP
 * server span): a claim tells it the key hash, which `idem.run()` cannot know beforehand.
 */
function requestSpanOf(parent: Context): Span | undefined {
  return parent.getValue(REQUEST_SPAN) as Span | undefined;
}
