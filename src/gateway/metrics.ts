import { Counter, Histogram, Registry } from 'prom-client';
import type { IdempotencyEvent } from '../core/events.js';
import type { IdempotencyStore } from '../stores/types.js';

/** Prometheus metrics for `GET /_idemkit/metrics`, fed by engine events and a store timer. */
export function createGatewayMetrics() {
  const registry = new Registry();
  const counter = (name: string, help: string, labelNames: string[] = []) =>
    new Counter({ name: `idemkit_${name}`, help, labelNames, registers: [registry] });
  const executions = counter('executions_total', 'Requests executed under a claim');
  const replays = counter('replays_total', 'Stored results replayed');
  const conflicts = counter('conflicts_total', 'Requests answered 409', ['reason']);
  const mismatches = counter('mismatches_total', 'Keys reused with another request (422)');
  const releases = counter('releases_total', 'Keys released after a failure');
  const uncertain = counter('uncertain_total', 'Keys held as uncertain');
  const leaseLost = counter('lease_lost_total', 'Writes refused because the lease was lost');
  const nonDurable = counter('non_durable_total', 'Responses sent before their result could be stored');
  const storeErrors = counter('store_errors_total', 'Failed store calls', ['operation']);
  const rejections = counter('rejections_total', 'Requests refused with a problem response', ['code']);
  const failOpen = counter('fail_open_total', 'Requests let through without idempotency');
  // Only with --allow-anonymous: keyed requests run in the one scope all anonymous callers share.
  const anonymous = counter('anonymous_requests_total', 'Keyed requests run in the shared anonymous scope');
  const storeLatency = new Histogram({
    name: 'idemkit_store_latency_seconds',
    help: 'Store call latency',
    labelNames: ['operation'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });

  function observe(event: IdempotencyEvent): void {
    if (event.type === 'execute') executions.inc();
    else if (event.type === 'replay') replays.inc();
    else if (event.type === 'conflict') conflicts.inc({ reason: event.reason });
    else if (event.type === 'mismatch') mismatches.inc();
    else if (event.type === 'release') releases.inc();
    else if (event.type === 'uncertain') uncertain.inc();
    else if (event.type === 'lease-lost') leaseLost.inc();
    else if (event.type === 'non-durable') nonDurable.inc();
    else if (event.type === 'store-error') storeErrors.inc({ operation: event.operation });
    else if (event.type === 'reject') rejections.inc({ code: event.code });
    else if (event.type === 'fail-open') failOpen.inc();
    else if (event.type === 'anonymous') anonymous.inc();
  }

  /** Wraps a store so every call's latency lands in the histogram. */
  function timed(store: IdempotencyStore): IdempotencyStore {
    const wrap =
      <A extends unknown[], R>(operation: string, fn: (...args: A) => Promise<R>) =>
      async (...args: A): Promise<R> => {
        const end = storeLatency.startTimer({ operation });
        try {
          return await fn.apply(store, args);
        } finally {
          end();
        }
      };
    const out: IdempotencyStore = {
      name: store.name,
      claim: wrap('claim', store.claim),
      heartbeat: wrap('heartbeat', store.heartbeat),
      complete: wrap('complete', store.complete),
      release: wrap('release', store.release),
      markUncertain: wrap('markUncertain', store.markUncertain),
      get: wrap('get', store.get),
      delete: wrap('delete', store.delete),
      sweep: wrap('sweep', store.sweep),
      close: () => store.close(),
    };
    if (store.check) out.check = store.check.bind(store);
    if (store.defaultSecret) out.defaultSecret = store.defaultSecret.bind(store);
    return out;
  }

  return { registry, observe, timed };
}
