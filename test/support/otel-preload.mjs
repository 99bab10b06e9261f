/*
 * What an operator preloads into `idemkit gateway --otel` (NODE_OPTIONS='--import …'): an
 * OpenTelemetry SDK registered globally. Instead of an OTLP exporter (not a dependency here),
 * each finished span is POSTed as JSON to OTEL_TEST_RECEIVER, a test's listener on 127.0.0.1.
 * Plain JavaScript: NODE_OPTIONS imports run before tsx is loaded.
 */
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

const receiver = process.env.OTEL_TEST_RECEIVER;

const exporter = {
  export(spans, done) {
    const body = spans.map((span) => ({
      name: span.name,
      spanId: span.spanContext().spanId,
      parentSpanId: span.parentSpanContext?.spanId,
      attributes: span.attributes,
    }));
    fetch(receiver, { method: 'POST', body: JSON.stringify(body) }).then(
      () => done({ code: 0 }),
      (error) => done({ code: 1, error }),
    );
  },
  shutdown: () => Promise.resolve(),
};

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(
  new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
);
