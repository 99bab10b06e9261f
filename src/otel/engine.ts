import { type Context, context, type Span, SpanStatusCode, trace } from '@opentelemetry/api';
import type { CommitResult, Decision, ExecuteDecision, HandlerContext } from '../core/decision.js';
import type { Idempotency } from '../core/engine.js';
import { isIdempotencyError } from '../core/errors.js';
import { type FetchHandler, handleFetch } from '../core/fetch-flow.js';
import type { OperationCall, OperationFn } from '../core/operation.js';
import type { EngineRequest } from '../core/request.js';
import {
  ATTR,
  METRIC_EXECUTIONS,
  METRIC_REQUESTS,
  type Outcome,
  REQUEST_SPAN,
  SPAN_REQUEST,
} from './names.js';
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
    const ctx = trace.setSpan(parent, span).setValue(REQUEST_SPAN, span);
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
      answered(span, decision.response.status, decision.kind === 'reject' ? decision.code : undefined);
      span.end();
      return decision;
    }
    handlerContexts.set(decision.ctx, ctx);
    // Persisting runs inside the request's context too: its store calls are children of the span.
    const finish = (write: () => Promise<CommitResult>) =>
      context.with(ctx, write).then(
        (result) => {
          executions.add(1, { [ATTR.disposition]: result.disposition });
          span.setAttribute(ATTR.disposition, result.disposition);
          answered(span, result.response.status, undefined);
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

  /**
   * The context of each running execution's request span, by its handler ctx: the fetch flow
   * runs the handler inside it, so the handler's own spans (database, HTTP client) are children
   * of the request span. Weak: an execution that ends takes its entry with it.
   */
  const handlerContexts = new WeakMap<HandlerContext, Context>();
  const insideRequestSpan =
    (handler: FetchHandler): FetchHandler =>
    (request, ctx) => {
      const within = ctx === undefined ? undefined : handlerContexts.get(ctx);
      return within === undefined ? handler(request, ctx) : context.with(within, () => handler(request, ctx));
    };

  /**
   * `idem.run()` (consumers, MCP tools) as one request span around the whole call, `fn`
   * included. The engine keeps its decision inside, so the outcome is read from what happened:
   * `fn` ran (execute; a fail-open run gets the detached ctx, fencing token 0), or it did not
   * (a replay when the call returned, else the code of the IdempotencyError it threw).
   */
  function run<T>(call: OperationCall, fn: OperationFn<T>): Promise<T> {
    const parent = context.active();
    const span = t.tracer.startSpan(
      SPAN_REQUEST,
      { attributes: { [ATTR.operation]: call.operation } },
      parent,
    );
    const ctx = trace.setSpan(parent, span).setValue(REQUEST_SPAN, span);
    let ran: Outcome | undefined;
    const observed: OperationFn<T> = (handlerCtx) => {
      ran = handlerCtx.fencingToken === 0 ? 'bypass' : 'execute';
      return fn(handlerCtx);
    };
    const end = (outcome: Outcome) => {
      span.setAttribute(ATTR.outcome, outcome);
      requests.add(1, { [ATTR.outcome]: outcome });
      span.end();
    };
    return context
      .with(ctx, () => engine.run(call, observed))
      .then(
        (result) => {
          end(ran ?? 'replay');
          return result;
        },
        (error: unknown) => {
          if (ran === undefined && isIdempotencyError(error)) {
            span.setAttribute(ATTR.problem, error.code);
            answered(span, error.status, error.code);
            end(outcomeOfCode(error.code));
          } else {
            span.recordException(error instanceof Error ? error : String(error));
            span.setStatus({ code: SpanStatusCode.ERROR });
            span.setAttribute(ATTR.errorType, error instanceof Error ? error.name : 'error');
            end(ran ?? 'reject');
          }
          throw error;
        },
      );
  }

  const instrumented: Idempotency = {
    begin: (request) => begin(request),
    run,
    handle: (request, handler, native) =>
      handleFetch(instrumented, request, insideRequestSpan(handler), native),
    storeHealthy: () => engine.storeHealthy(),
    options: engine.options,
    close: () => engine.close(),
  };
  return instrumented;
}

function outcomeOf(decision: Decision): Outcome {
  return decision.kind === 'reject' ? outcomeOfCode(decision.code) : decision.kind;
}

function outcomeOfCode(code: string): Outcome {
  if (code === 'key-reused') return 'mismatch';
  return CONFLICTS.has(code) ? 'conflict' : 'reject';
}

/** The status the caller gets; a 5xx marks the span as an error (as HTTP server spans do). */
function answered(span: Span, status: number, code: string | undefined): void {
  span.setAttribute(ATTR.status, status);
  if (status < 500) return;
  span.setStatus({ code: SpanStatusCode.ERROR });
  span.setAttribute(ATTR.errorType, code ?? String(status));
}

function fail(span: Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}
