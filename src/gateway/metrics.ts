import { Counter, Registry } from 'prom-client';
import type { IdempotencyEvent } from '../core/events.js';
import type { IdempotencyStore } from '../core/store.js';
import { isInProcess, markInProcess } from '../core/store-call.js';

/*
 * Prometheus metrics for `GET /_idemkit/metrics`, fed by engine events and a store timer. Every
 * request feeds them, so the request path only adds to plain numbers: counters are handed to
 * prom-client when the registry is scraped (its `collect` hook), and the store latency histogram
 * is a small metric of its own whose `get()` prints what prom-client's Histogram would. A scrape
 * sees everything observed before it.
 */

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** A counter whose increments are plain additions, flushed into prom-client on scrape. */
function lazyCounter(registry: Registry, name: string, help: string, labelName?: string) {
  let pending = 0;
  const pendingBy = new Map<string, number>();
  new Counter({
    name: `idemkit_${name}`,
    help,
    labelNames: labelName === undefined ? [] : [labelName],
    registers: [registry],
    collect() {
      if (pending > 0) this.inc(pending);
      pending = 0;
      for (const [value, n] of pendingBy) this.inc({ [labelName as string]: value }, n);
      pendingBy.clear();
    },
  });
  return {
    inc(): void {
      pending++;
    },
    incFor(value: string): void {
      pendingBy.set(value, (pendingBy.get(value) ?? 0) + 1);
    },
  };
}

/** Per-operation latency buckets: an array index per observation, no label hashing. */
class LatencyHistogram {
  readonly name = 'idemkit_store_latency_seconds';
  readonly help = 'Store call latency';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, { buckets: number[]; sum: number; count: number }>();

  /** The series of one operation, to observe into without a lookup. */
  for(operation: string): (seconds: number) => void {
    let series = this.series.get(operation);
    if (!series) {
      series = { buckets: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.series.set(operation, series);
    }
    const s = series;
    return (seconds) => {
      s.sum += seconds;
      s.count++;
      for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
        if (seconds <= (LATENCY_BUCKETS[i] as number)) {
          (s.buckets[i] as number)++;
          break;
        }
      }
    };
  }

  /** The shape prom-client's Histogram returns, so the registry prints the same lines. */
  async get() {
    const values: { labels: object; sharedLabels: object; value: number; metricName: string }[] = [];
    for (const [operation, s] of this.series) {
      // Only operations that were called, as prom-client shows only label sets it has seen.
      if (s.count === 0) continue;
      const sharedLabels = { operation };
      let cumulative = 0;
      LATENCY_BUCKETS.forEach((le, i) => {
        cumulative += s.buckets[i] as number;
        values.push({ labels: { le }, sharedLabels, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push(
        { labels: { le: '+Inf' }, sharedLabels, value: s.count, metricName: `${this.name}_bucket` },
        { labels: {}, sharedLabels, value: s.sum, metricName: `${this.name}_sum` },
        { labels: {}, sharedLabels, value: s.count, metricName: `${this.name}_count` },
      );
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}

export function createGatewayMetrics() {
  const registry = new Registry();
  const counter = (name: string, help: string, labelName?: string) =>
    lazyCounter(registry, name, help, labelName);
  const executions = counter('executions_total', 'Requests executed under a claim');
  const replays = counter('replays_total', 'Stored results replayed');
  const conflicts = counter('conflicts_total', 'Requests answered 409', 'reason');
  const mismatches = counter('mismatches_total', 'Keys reused with another request (422)');
  const releases = counter('releases_total', 'Keys released after a failure');
  const uncertain = counter('uncertain_total', 'Keys held as uncertain');
  const leaseLost = counter('lease_lost_total', 'Writes refused because the lease was lost');
  const nonDurable = counter('non_durable_total', 'Responses sent before their result could be stored');
  const storeErrors = counter('store_errors_total', 'Failed store calls', 'operation');
  const rejections = counter('rejections_total', 'Requests refused with a problem response', 'code');
  const failOpen = counter('fail_open_total', 'Requests let through without idempotency');
  // Only with --allow-anonymous: keyed requests run in the one scope all anonymous callers share.
  const anonymous = counter('anonymous_requests_total', 'Keyed requests run in the shared anonymous scope');
  const storeLatency = new LatencyHistogram();
  registry.registerMetric(storeLatency as unknown as Parameters<Registry['registerMetric']>[0]);

  function observe(event: IdempotencyEvent): void {
    if (event.type === 'execute') executions.inc();
    else if (event.type === 'replay') replays.inc();
    else if (event.type === 'conflict') conflicts.incFor(event.reason);
    else if (event.type === 'mismatch') mismatches.inc();
    else if (event.type === 'release') releases.inc();
    else if (event.type === 'uncertain') uncertain.inc();
    else if (event.type === 'lease-lost') leaseLost.inc();
    else if (event.type === 'non-durable') nonDurable.inc();
    else if (event.type === 'store-error') storeErrors.incFor(event.operation);
    else if (event.type === 'reject') rejections.incFor(event.code);
    else if (event.type === 'fail-open') failOpen.inc();
    else if (event.type === 'anonymous') anonymous.inc();
  }

  /**
   * Wraps a store so every call's latency lands in the histogram: one `then` on the store's own
   * promise, no async wrapper and no timer object per call.
   */
  function timed(store: IdempotencyStore): IdempotencyStore {
    const wrap = <A extends unknown[], R>(operation: string, fn: (...args: A) => Promise<R>) => {
      const record = storeLatency.for(operation);
      return (...args: A): Promise<R> => {
        const started = performance.now();
        const done = () => record((performance.now() - started) / 1_000);
        let pending: Promise<R>;
        try {
          pending = fn.apply(store, args);
        } catch (error) {
          // A store that throws instead of rejecting still fails as a rejection, as before.
          done();
          return Promise.reject(error);
        }
        return pending.then(
          (value) => {
            done();
            return value;
          },
          (error: unknown) => {
            done();
            throw error;
          },
        );
      };
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
    // Without it a duplicate waiting on another gateway's request would only poll.
    if (store.onSettled) out.onSettled = store.onSettled.bind(store);
    // Timing adds no I/O: a store that answers from memory still cannot hang, and the engine
    // skips its timeout race (a promise, a deadline and two callbacks per call).
    return isInProcess(store) ? markInProcess(out) : out;
  }

  return { registry, observe, timed };
}
