import { createContextKey } from '@opentelemetry/api';

/** Span, metric and attribute names idemkit reports through OpenTelemetry (docs/opentelemetry.md). */
export const SPAN_REQUEST = 'idemkit.request';
export const spanStore = (operation: string) => `idemkit.store ${operation}`;

export const METRIC_REQUESTS = 'idemkit.requests';
export const METRIC_EXECUTIONS = 'idemkit.executions';
export const METRIC_STORE_DURATION = 'idemkit.store.operation.duration';

export const ATTR = {
  outcome: 'idemkit.outcome',
  /** The store key: a SHA-256 of the scope, never the client's raw key. */
  keyHash: 'idemkit.key.hash',
  problem: 'idemkit.problem.type',
  disposition: 'idemkit.disposition',
  storeOperation: 'idemkit.store.operation',
  storeName: 'idemkit.store.name',
  /** For `idem.run()` calls: the operation name (its `path`). */
  operation: 'idemkit.operation',
  method: 'http.request.method',
  path: 'url.path',
  status: 'http.response.status_code',
  errorType: 'error.type',
} as const;

/** What idemkit decided for a keyed (or uncovered) request. */
export type Outcome = 'execute' | 'replay' | 'conflict' | 'mismatch' | 'reject' | 'bypass';

/**
 * Marks the context of an `idemkit.request` span, so the store decorator can tell that span
 * (and give it the key hash a claim carries) from any other active span, e.g. an HTTP server's.
 */
export const REQUEST_SPAN = createContextKey('idemkit.request');
