/**
 * `idemkit/otel`: OpenTelemetry traces and metrics through `@opentelemetry/api` (an optional
 * peer). Without a registered SDK the API is a no-op, and so is this.
 * @example
 * const idem = instrumentEngine(createIdempotency({ store: instrumentStore(sqliteStore()) }))
 */
import { createIdempotency, type Idempotency } from '../core/engine.js';
import type { IdempotencyOptions } from '../core/options.js';
import { instrumentEngine } from './engine.js';
import { instrumentStore } from './store.js';
import type { TelemetryOptions } from './telemetry.js';

export { instrumentEngine } from './engine.js';
export {
  ATTR,
  METRIC_EXECUTIONS,
  METRIC_REQUESTS,
  METRIC_STORE_DURATION,
  type Outcome,
  SPAN_REQUEST,
} from './names.js';
export { instrumentStore } from './store.js';
export type { TelemetryOptions } from './telemetry.js';

/** `createIdempotency(options)` with its store and itself instrumented. */
export function createInstrumentedIdempotency(
  options: IdempotencyOptions,
  telemetry: TelemetryOptions = {},
): Idempotency {
  return instrumentEngine(
    createIdempotency({ ...options, store: instrumentStore(options.store, telemetry) }),
    telemetry,
  );
}
