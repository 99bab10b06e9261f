import { context, SpanStatusCode } from '@opentelemetry/api';
import type { IdempotencyStore } from '../core/store.js';
import { ATTR, METRIC_STORE_DURATION, spanStore } from './names.js';
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

/**
 * The store with a child span per call (`idemkit.store claim` …, under the active request span)
 * and the `idemkit.store.operation.duration` histogram (seconds; `error.type` on failures).
 * A Proxy, so optional parts of the store (transactions, settle notifications) stay as they are.
 */
export function instrumentStore<S extends IdempotencyStore>(store: S, options: TelemetryOptions = {}): S {
  const t = telemetryOf(options);
  const duration = t.meter.createHistogram(METRIC_STORE_DURATION, {
    description: 'Duration of idemkit store calls',
    unit: 's',
  });
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof property !== 'string' || !TIMED.has(property) || typeof value !== 'function') return value;
      let fn = wrapped.get(property);
      if (!fn) {
        fn = timed(property, value as (...args: unknown[]) => Promise<unknown>);
        wrapped.set(property, fn);
      }
      return fn;
    },
  });

  function timed(operation: string, call: (...args: unknown[]) => Promise<unknown>) {
    const attributes = { [ATTR.storeOperation]: operation, [ATTR.storeName]: store.name };
    return (...args: unknown[]): Promise<unknown> => {
      const span = t.tracer.startSpan(spanStore(operation), { attributes }, context.active());
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
        pending = call.apply(store, args);
      } catch (error) {
        done(error);
        return Promise.reject(error);
      }
      return pending.then(
        (value) => {
          done();
          return value;
        },
        (error: unknown) => {
          done(error);
          throw error;
        },
      );
    };
  }
}
