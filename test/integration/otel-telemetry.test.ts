import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { context, metrics, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { withIdempotency } from '../../src/adapters/fetch.js';
import { createIdempotency, type IdempotencyStore, memoryStore } from '../../src/index.js';
import { createInstrumentedIdempotency, instrumentEngine, instrumentStore } from '../../src/otel/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { faultyStore } from '../support/engine-helpers.js';
import { gatewayInFrontOfStub } from '../support/gateway-start.js';

const quiet = { onWarning() {} };
const spans = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({
  exporter: metricExporter,
  exportIntervalMillis: 3_600_000,
});
const meterProvider = new MeterProvider({ readers: [reader] });
const telemetry = { tracer: tracerProvider.getTracer('test'), meter: meterProvider.getMeter('test') };

before(() => {
  // Parent/child links need a context manager, as any application with the Node SDK has.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
});
after(async () => {
  context.disable();
  await meterProvider.shutdown();
  await tracerProvider.shutdown();
});

/** A real server: the fetch adapter over a socket, the engine and store instrumented. */
async function serve(store: IdempotencyStore = memoryStore(quiet)) {
  const idem = createInstrumentedIdempotency({ store, ...quiet }, telemetry);
  const handler = withIdempotency(async () => Response.json({ id: 'ch_1' }, { status: 201 }), idem);
  const server = await serveFetch(handler);
  after(() => server.close());
  return server;
}

const post = (url: string, key: string, body = '{"amount":1}') =>
  fetch(`${url}/charges`, {
    method: 'POST',
    headers: { 'idempotency-key': key, authorization: 'Bearer otel', 'content-type': 'application/json' },
    body,
  });

function requestSpans(): ReadableSpan[] {
  return spans.getFinishedSpans().filter((s) => s.name === 'idemkit.request');
}

function childrenOf(parent: ReadableSpan): ReadableSpan[] {
  return spans.getFinishedSpans().filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId);
}

async function counter(name: string): Promise<Map<string, number>> {
  const { resourceMetrics } = await reader.collect();
  const out = new Map<string, number>();
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name !== name) continue;
      for (const point of metric.dataPoints) {
        const label = Object.values(point.attributes).join(',');
        out.set(
          label,
          typeof point.value === 'number' ? point.value : (point.value as { count: number }).count,
        );
      }
    }
  }
  return out;
}

describe('idemkit/otel with the OpenTelemetry SDK in-memory exporters', () => {
  it('a keyed request is one span with outcome execute and its store calls as children; the retry is a replay', async () => {
    spans.reset();
    const server = await serve();
    assert.equal((await post(server.url, 'otel-1')).status, 201);
    assert.equal((await post(server.url, 'otel-1')).status, 201);

    const [first, second] = requestSpans();
    assert.ok(first && second);
    assert.equal(first.attributes['idemkit.outcome'], 'execute');
    assert.equal(first.attributes['idemkit.disposition'], 'store');
    assert.equal(first.attributes['http.response.status_code'], 201);
    assert.equal(first.attributes['http.request.method'], 'POST');
    assert.match(String(first.attributes['idemkit.key.hash']), /^[0-9a-f]{64}$/);
    assert.deepEqual(
      childrenOf(first).map((s) => s.name),
      ['idemkit.store claim', 'idemkit.store complete'],
    );
    assert.equal(second.attributes['idemkit.outcome'], 'replay');
    assert.equal(second.attributes['idemkit.key.hash'], first.attributes['idemkit.key.hash']);
    assert.deepEqual(
      childrenOf(second).map((s) => s.name),
      ['idemkit.store claim'],
    );
  });

  it('names mismatch and conflict outcomes, and never puts the raw key in any attribute', async () => {
    spans.reset();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const idem = createInstrumentedIdempotency({ store: memoryStore(quiet), ...quiet }, telemetry);
    const handler = withIdempotency(async () => {
      await gate;
      return Response.json({ ok: true }, { status: 201 });
    }, idem);
    const server = await serveFetch(handler);
    after(() => server.close());
    const secretKey = 'raw-client-key-5f2b9c';
    const first = post(server.url, secretKey);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await post(server.url, secretKey)).status, 409);
    release();
    await first;
    assert.equal((await post(server.url, secretKey, '{"amount":2}')).status, 422);

    const outcomes = requestSpans().map((s) => s.attributes['idemkit.outcome']);
    assert.deepEqual(outcomes.sort(), ['conflict', 'execute', 'mismatch']);
    const conflict = requestSpans().find((s) => s.attributes['idemkit.outcome'] === 'conflict');
    assert.equal(conflict?.attributes['idemkit.problem.type'], 'in-progress');
    const everything = JSON.stringify(spans.getFinishedSpans().map((s) => s.attributes));
    assert.ok(!everything.includes(secretKey), 'the raw key appears nowhere');
    assert.ok(
      everything.includes('idemkit.key.hash'),
      'negative check: the serialised attributes are what we think',
    );
  });

  it('a failing store call marks its span as an error and counts into the duration histogram by error type', async () => {
    spans.reset();
    const faulty = faultyStore(memoryStore(quiet));
    faulty.fail('claim', 'throw');
    const server = await serve(faulty.store);
    assert.equal((await post(server.url, 'otel-err')).status, 503);
    const claim = spans.getFinishedSpans().find((s) => s.name === 'idemkit.store claim');
    assert.equal(claim?.status.code, 2 /* SpanStatusCode.ERROR */);
    assert.equal(claim?.attributes['error.type'], 'Error');
    assert.equal(requestSpans()[0]?.attributes['idemkit.problem.type'], 'store-unavailable');
    const durations = await counter('idemkit.store.operation.duration');
    assert.ok(
      [...durations.keys()].some((k) => k.includes('claim') && k.includes('Error')),
      [...durations.keys()].join(' | '),
    );
  });

  it('counts requests by outcome and executions by disposition', async () => {
    const before = await counter('idemkit.requests');
    const server = await serve();
    await post(server.url, 'otel-count');
    await post(server.url, 'otel-count');
    const afterwards = await counter('idemkit.requests');
    const delta = (label: string) => (afterwards.get(label) ?? 0) - (before.get(label) ?? 0);
    assert.equal(delta('execute'), 1);
    assert.equal(delta('replay'), 1);
    assert.ok(((await counter('idemkit.executions')).get('store') ?? 0) >= 1);
  });

  it('with no SDK registered it records nothing and changes nothing', async () => {
    assert.equal(trace.getTracerProvider().getTracer('x').startSpan('probe').isRecording(), false);
    assert.ok(metrics.getMeterProvider());
    const idem = instrumentEngine(
      createIdempotency({ store: instrumentStore(memoryStore(quiet)), ...quiet }),
    );
    const server = await serveFetch(withIdempotency(async () => new Response('ok', { status: 201 }), idem));
    after(() => server.close());
    const before = spans.getFinishedSpans().length;
    const res = await post(server.url, 'otel-noop');
    assert.equal(res.status, 201);
    assert.equal((await post(server.url, 'otel-noop')).headers.get('idempotent-replayed'), 'true');
    assert.equal(spans.getFinishedSpans().length, before);
  });

  it('the gateway with otel: true reports through the globally registered SDK and keeps its Prometheus endpoint', async () => {
    spans.reset();
    trace.setGlobalTracerProvider(tracerProvider);
    after(() => trace.disable());
    const gateway = await gatewayInFrontOfStub({ otel: true });
    assert.equal((await post(gateway.url, 'gw-otel')).status, 201);
    assert.equal((await post(gateway.url, 'gw-otel')).headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(
      requestSpans().map((s) => s.attributes['idemkit.outcome']),
      ['execute', 'replay'],
    );
    const first = requestSpans()[0] as ReadableSpan;
    assert.deepEqual(
      childrenOf(first).map((s) => s.name),
      ['idemkit.store claim', 'idemkit.store complete'],
    );
    const scrape = await (await fetch(`${gateway.adminUrl}/_idemkit/metrics`)).text();
    assert.match(scrape, /^idemkit_executions_total 1$/m);
  });
});
