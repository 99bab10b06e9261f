import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { context, type Span, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { type Histogram, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { withIdempotency } from '../../src/adapters/fetch.js';
import type { FetchHandler } from '../../src/core/fetch-flow.js';
import { type IdempotencyStore, KeyReusedError, memoryStore } from '../../src/index.js';
import { createInstrumentedIdempotency } from '../../src/otel/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { faultyStore } from '../support/engine-helpers.js';

/*
 * Which span is whose parent: heartbeats under their own request (not under whichever request
 * started the engine's shared heartbeat timer), the handler's and fn's own spans under the
 * request span, and idem.run() calls as request spans of their own.
 */

const quiet = { onWarning() {} };
const spans = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
const tracer = provider.getTracer('test');
const telemetry = { tracer };

before(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
});
after(async () => {
  context.disable();
  await provider.shutdown();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A handler that waits until `count` handlers have started (at most 5 s), then runs 200 ms more:
 * the executions overlap for that long however late the second request arrives.
 */
function overlapping(count: number): () => Promise<Response> {
  let started = 0;
  return async () => {
    started++;
    const deadline = Date.now() + 5_000;
    while (started < count && Date.now() < deadline) await sleep(5);
    await sleep(200);
    return new Response('ok', { status: 201 });
  };
}

async function serve(handler: FetchHandler, options: { store?: IdempotencyStore; leaseMs?: number } = {}) {
  const idem = createInstrumentedIdempotency(
    {
      store: options.store ?? memoryStore(quiet),
      ...quiet,
      ...(options.leaseMs ? { leaseMs: options.leaseMs } : {}),
    },
    telemetry,
  );
  const server = await serveFetch(withIdempotency(handler, idem));
  after(() => server.close());
  return server;
}

const post = (url: string, key: string) =>
  fetch(`${url}/charges`, {
    method: 'POST',
    headers: { 'idempotency-key': key, authorization: 'Bearer ctx', 'content-type': 'application/json' },
    body: '{"amount":1}',
  });

const named = (name: string) => spans.getFinishedSpans().filter((s) => s.name === name);
const idOf = (s: ReadableSpan) => s.spanContext().spanId;

/**
 * Store spans whose key hash is not their parent request span's: a heartbeat or write drawn
 * under another request. Empty when every store call sits under the request it was made for.
 */
function misparented(all: readonly ReadableSpan[]): ReadableSpan[] {
  const requests = new Map(all.filter((s) => s.name === 'idemkit.request').map((s) => [idOf(s), s]));
  return all.filter((s) => {
    if (!s.name.startsWith('idemkit.store ')) return false;
    const parent = requests.get(s.parentSpanContext?.spanId ?? '');
    return parent?.attributes['idemkit.key.hash'] !== s.attributes['idemkit.key.hash'];
  });
}

/** Every attribute, on any span, whose value contains `raw`. */
function leaksOf(all: readonly ReadableSpan[], raw: string): string[] {
  return all.flatMap((s) =>
    Object.entries(s.attributes)
      .filter(([, value]) => String(value).includes(raw))
      .map(([name]) => `${s.name} ${name}`),
  );
}

describe('idemkit/otel: parents and contexts', () => {
  it('concurrent executions: each heartbeat and write is a child of its own request span', async () => {
    spans.reset();
    // leaseMs 90: a heartbeat every 30 ms; both handlers run together for several.
    const server = await serve(overlapping(2), { leaseMs: 90 });
    const first = post(server.url, 'ctx-a');
    await sleep(40);
    const second = post(server.url, 'ctx-b');
    assert.deepEqual([(await first).status, (await second).status], [201, 201]);

    const all = spans.getFinishedSpans();
    const requests = named('idemkit.request');
    assert.equal(requests.length, 2);
    for (const request of requests) {
      const beats = all.filter(
        (s) => s.name === 'idemkit.store heartbeat' && s.parentSpanContext?.spanId === idOf(request),
      );
      assert.ok(beats.length >= 2, `each execution's heartbeats are its children (got ${beats.length})`);
    }
    assert.deepEqual(misparented(all), []);
  });

  it('negative control: parenting store spans by the active context draws the second request’s heartbeats under the first', async () => {
    spans.reset();
    // The naive decorator: a span per store call under whatever context is active. The engine's
    // shared heartbeat timer runs in the context of the request that started it.
    const inner = memoryStore(quiet);
    const naive = new Proxy(inner, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver);
        if (property !== 'heartbeat' || typeof value !== 'function') return value;
        return (request: { key: string }) => {
          const span = tracer.startSpan('idemkit.store heartbeat', {
            attributes: { 'idemkit.key.hash': request.key },
          });
          return (value as (r: unknown) => Promise<boolean>).call(target, request).finally(() => span.end());
        };
      },
    });
    const server = await serve(overlapping(2), { leaseMs: 90, store: naive });
    const first = post(server.url, 'ctx-naive-a');
    await sleep(40);
    const second = post(server.url, 'ctx-naive-b');
    await Promise.all([first, second]);
    assert.ok(misparented(spans.getFinishedSpans()).length > 0, 'the check finds misdrawn heartbeats');
  });

  it('fetch flow: the handler runs inside the request span, so its own spans are children', async () => {
    spans.reset();
    const server = await serve(async () => {
      tracer.startSpan('app.charge').end();
      return new Response('ok', { status: 201 });
    });
    assert.equal((await post(server.url, 'ctx-handler')).status, 201);
    const [request] = named('idemkit.request');
    const [work] = named('app.charge');
    assert.ok(request && work);
    assert.equal(work.parentSpanContext?.spanId, idOf(request));
  });

  it('the raw key appears in no attribute; the check finds it when a handler leaks it onto the request span', async () => {
    spans.reset();
    const raw = 'raw-key-ctx-9c41e7';
    const plain = await serve(async () => new Response('ok', { status: 201 }));
    await post(plain.url, raw);
    await post(plain.url, raw);
    assert.deepEqual(leaksOf(spans.getFinishedSpans(), raw), []);

    spans.reset();
    const leaky = await serve(async (request) => {
      trace
        .getActiveSpan()
        ?.setAttribute('app.idempotency_key', request.headers.get('idempotency-key') ?? '');
      return new Response('ok', { status: 201 });
    });
    await post(leaky.url, raw);
    assert.deepEqual(leaksOf(spans.getFinishedSpans(), raw), ['idemkit.request app.idempotency_key']);
  });

  it('a store that fails answers 503 and marks the request span as an error', async () => {
    spans.reset();
    const faulty = faultyStore(memoryStore(quiet));
    faulty.fail('claim');
    const server = await serve(async () => new Response('ok', { status: 201 }), { store: faulty.store });
    assert.equal((await post(server.url, 'ctx-503')).status, 503);
    const [request] = named('idemkit.request');
    assert.equal(request?.status.code, SpanStatusCode.ERROR);
    assert.equal(request?.attributes['error.type'], 'store-unavailable');
    assert.equal(request?.attributes['idemkit.outcome'], 'reject');
  });

  it('idem.run(): a request span per call with its outcome, key hash and operation; fn’s spans and the store calls are its children', async () => {
    spans.reset();
    const idem = createInstrumentedIdempotency({ store: memoryStore(quiet), ...quiet }, telemetry);
    after(() => idem.close());
    let runs = 0;
    const charge = () => {
      runs++;
      const span: Span = tracer.startSpan('app.charge');
      span.end();
      return { id: 'ch_1' };
    };
    const call = { operation: 'charge', key: 'evt-run-1', principal: 'p', params: { amount: 1 } };
    assert.deepEqual(await idem.run(call, charge), { id: 'ch_1' });
    assert.deepEqual(await idem.run(call, charge), { id: 'ch_1' });
    await assert.rejects(idem.run({ ...call, params: { amount: 2 } }, charge), KeyReusedError);
    assert.equal(runs, 1);

    const requests = named('idemkit.request');
    assert.deepEqual(
      requests.map((s) => s.attributes['idemkit.outcome']),
      ['execute', 'replay', 'mismatch'],
    );
    const [executed, replayed, mismatched] = requests as [ReadableSpan, ReadableSpan, ReadableSpan];
    assert.equal(executed.attributes['idemkit.operation'], 'charge');
    assert.match(String(executed.attributes['idemkit.key.hash']), /^[0-9a-f]{64}$/);
    assert.equal(replayed.attributes['idemkit.key.hash'], executed.attributes['idemkit.key.hash']);
    assert.equal(mismatched.attributes['idemkit.problem.type'], 'key-reused');
    const children = spans
      .getFinishedSpans()
      .filter((s) => s.parentSpanContext?.spanId === idOf(executed))
      .map((s) => s.name);
    assert.deepEqual(children.sort(), ['app.charge', 'idemkit.store claim', 'idemkit.store complete']);
    assert.deepEqual(leaksOf(spans.getFinishedSpans(), 'evt-run-1'), []);
  });

  it('store durations land in second-sized buckets, not the SDK defaults meant for milliseconds', async () => {
    class Reader extends MetricReader {
      protected override async onForceFlush(): Promise<void> {}
      protected override async onShutdown(): Promise<void> {}
    }
    const reader = new Reader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    after(() => meterProvider.shutdown());
    const idem = createInstrumentedIdempotency(
      { store: memoryStore(quiet), ...quiet },
      { tracer, meter: meterProvider.getMeter('test') },
    );
    after(() => idem.close());
    for (let i = 0; i < 5; i++) {
      await idem.run({ operation: 'bucket', key: `k${i}`, principal: 'p' }, () => i);
    }
    const { resourceMetrics } = await reader.collect();
    const metric = resourceMetrics.scopeMetrics
      .flatMap((scope) => scope.metrics)
      .find((m) => m.descriptor.name === 'idemkit.store.operation.duration');
    assert.equal(metric?.descriptor.unit, 's');
    const claims = metric?.dataPoints.find((p) => p.attributes['idemkit.store.operation'] === 'claim');
    const histogram = claims?.value as Histogram;
    assert.equal(histogram.count, 5);
    assert.deepEqual(histogram.buckets.boundaries.slice(0, 3), [0.0005, 0.001, 0.0025]);
    // An in-process claim takes well under 250 ms: every one falls below that boundary.
    const below = histogram.buckets.boundaries.indexOf(0.25);
    const fast = histogram.buckets.counts.slice(0, below + 1).reduce((a, b) => a + b, 0);
    assert.equal(fast, 5);
  });
});
