import { type Context, context, type Span, SpanStatusCode, trace } from '@opentelemetry/api';
import type { CommitResult, Decision, ExecuteDecision } from '../core/decision.js';
import type { Idempotency } from '../core/engine.js';
import { handleFetch } from '../core/fetch-flow.js';
import type { EngineRequest } from '../core/request.js';
import { ATTR, METRIC_EXECUTIONS, METRIC_REQUESTS, type Outcome, SPAN_REQUEST } from './names.js';
import { type TelemetryOptions, telemetryOf } from './telemetry.js';

const CONFLICTS = new Set(['in-progress', 'lease-lost', 'outcome-uncertain', 'result-unavailable']);

/**
 * The engine with a span per request (`idemkit.request`, its outcome and hashed key as
 * attributes, the store calls made for it as children when the store is instrumented too) and
 * the `idemkit.requests` / `idemkit.executions` counters. Everything else passes through.
 */
export function instrumentEngine(engine: Idempotency, options: TelemetryOptions = {}): Idempotency {
  const t = telemetryOf(options);
  const requests = t.meter.createCounter(METRIC_REQUESTS, {
    description: 'Requests idemkit decided, by outcome',
    unit: '{request}',
  });
  const executions = t.meter.createCounter(METRIC_EXECUTIONS, {
    description: 'Executions ended, by disposition (store, release, uncertain, lease-lost, unknown)',
    unit: '{execution}',
  });

  function begin(request: EngineRequest, parent: Context = context.active()): Promise<Decision> {
    const span = t.tracer.startSpan(
      SPAN_REQUEST,
      { attributes: { [ATTR.method]: request.method.toUpperCase(), [ATTR.path]: request.path } },
      parent,
    );
    const ctx = trace.setSpan(parent, span);
    return context
      .with(ctx, () => engine.begin(request))
      .then(
        (decision) => observe(decision, span, ctx),
        (error: unknown) => {
          fail(span, error);
          throw error;
        },
      );
  }

  function observe(decision: Decision, span: Span, ctx: Context): Decision {
    const outcome = outcomeOf(decision);
    span.setAttribute(ATTR.outcome, outcome);
    requests.add(1, { [ATTR.outcome]: outcome });
    if (decision.kind === 'bypass') {
      span.end();
      return decision;
    }
    span.setAttribute(ATTR.keyHash, 'key' in decision ? decision.key : '');
    if (decision.kind !== 'execute') {
      if (decision.kind === 'reject') span.setAttribute(ATTR.problem, decision.code);
      span.setAttribute(ATTR.status, decision.response.status);
      span.end();
      return decision;
    }
    // Persisting runs inside the request's context too: its store calls are children of the span.
    const finish = (run: () => Promise<CommitResult>) =>
      context.with(ctx, run).then(
        (result) => {
          executions.add(1, { [ATTR.disposition]: result.disposition });
          span.setAttributes({
            [ATTR.disposition]: result.disposition,
            [ATTR.status]: result.response.status,
          });
          span.end();
          return result;
        },
        (error: unknown) => {
          fail(span, error);
          throw error;
        },
      );
    const execute: ExecuteDecision = {
      kind: 'execute',
      key: decision.key,
      ctx: decision.ctx,
      commit: (response) => finish(() => decision.commit(response)),
      abort: (error) => finish(() => decision.abort(error)),
    };
    return execute;
  }

  const instrumented: Idempotency = {
    begin: (request) => begin(request),
    run: (call, fn) => engine.run(call, fn),
    // The whole fetch flow inside the request span: the handler's own spans become its children.
    handle: (request, handler, native) => handleFetch(instrumented, request, handler, native),
    storeHealthy: () => engine.storeHealthy(),
    options: engine.options,
    close: () => engine.close(),
  };
  return instrumented;
}

function outcomeOf(decision: Decision): Outcome {
  if (decision.kind !== 'reject') return decision.kind;
  if (decision.code === 'key-reused') return 'mismatch';
  return CONFLICTS.has(decision.code) ? 'conflict' : 'reject';
}

function fail(span: Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}
