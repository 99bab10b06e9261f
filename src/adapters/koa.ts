import type { DefaultState, Middleware, Next, ParameterizedContext } from 'koa';
import { createIdempotency, type Idempotency } from '../core/engine.js';
import type { ExecuteDecision, HandlerContext } from '../core/execution.js';
import type { IdempotencyOptions } from '../core/options.js';
import { problemResponse } from '../core/problem.js';
import type { EngineRequest } from '../core/request.js';
import { type ParsedRequest, requestBody } from './koa-body.js';
import { answerWith, isHttpError, keepWritableWhileHeld } from './koa-response.js';
import { engineRequestOf } from './node-http.js';
import { captureResponse } from './node-http-capture.js';

export type { WebhookHandler, WebhookReceiverOptions } from '../consumer/receive-webhook.js';
export type { HandlerContext } from '../core/execution.js';
export { webhookReceiver } from './koa-webhook.js';

/**
 * What the middleware puts on `ctx.state`. Type your app with it so handlers see
 * `ctx.state.idempotency` typed: `new Koa<IdempotencyState>()` (or `Router<IdempotencyState>`).
 */
export interface IdempotencyState {
  /** Present while the request runs under an Idempotency-Key claim; `undefined` otherwise. */
  idempotency?: HandlerContext;
}

type KoaContext = ParameterizedContext<IdempotencyState>;
type Resolver<StateT> = (
  ctx: ParameterizedContext<StateT>,
  request: EngineRequest,
) => string | undefined | Promise<string | undefined>;

/**
 * The engine's options, with `principal()` and `tenant()` receiving Koa's `ctx` (its `state`
 * typed as your app's: `idempotency<MyState>({ principal: (ctx) => ctx.state.user.id })`).
 */
export interface KoaIdempotencyOptions<StateT = DefaultState>
  extends Omit<IdempotencyOptions, 'principal' | 'tenant'> {
  /** The authenticated caller, e.g. `(ctx) => ctx.state.user?.id`. @default SHA-256 of Authorization */
  principal?: Resolver<StateT>;
  /** The tenant, for multi-tenant apps. @default '' */
  tenant?: Resolver<StateT>;
}

type Engine = Pick<Idempotency, 'begin' | 'options'>;

/**
 * Koa 3 middleware: unsafe requests with an `Idempotency-Key` run once, retries get the stored
 * response. `app.use(idempotency(options))`; pass options, or an engine from
 * `createIdempotency()` to share one between apps or routers.
 *
 * Body: the middleware reads `ctx.req` itself (within `maxBodyBytes`) and puts the bytes back, so
 * a body parser after it reads the request as usual; with a parser in front, it takes the parser's
 * `ctx.request.rawBody`. Under a claim, handlers get `ctx.state.idempotency`
 * (`downstreamKey()`, `signal`, `fencingToken`, `effectsStarted()`).
 *
 * Capture is at `ctx.res`: what Koa writes once the chain unwinds (`ctx.body` as a string,
 * Buffer, object, stream or null, with `ctx.status` and `ctx.set()`), or what a
 * `ctx.respond = false` handler writes itself, is held, stored, then sent. `ctx.throw(422, …)`
 * is an answer: Koa renders it and that is stored. Any other throw ends the execution with a
 * sanitised 500 problem and goes on to Koa's error handling (`app.on('error')`).
 * @example
 * const app = new Koa<IdempotencyState>()
 * app.use(idempotency({ store: memoryStore() }))
 * app.use(async (ctx) => { ctx.status = 201; ctx.body = await charge(ctx.state.idempotency?.downstreamKey()) })
 */
export function idempotency<StateT = DefaultState>(
  options: KoaIdempotencyOptions<StateT> | Idempotency,
): Middleware<StateT & IdempotencyState> {
  // The engine hands `principal()`/`tenant()` the native request it was given: always the ctx.
  const engine: Engine = 'begin' in options ? options : createIdempotency(options as IdempotencyOptions);
  const covered = engine.options.methods;

  return async function idempotencyMiddleware(ctx: KoaContext, next: Next) {
    if (!covered.has(ctx.method)) return next();
    // A parser in front that consumed the stream without keeping the raw text makes this throw:
    // a setup error, which Koa answers with a 500 and reports through app.on('error').
    const body = await requestBody(ctx.request as unknown as ParsedRequest, engine.options.maxBodyBytes);
    // The client went away mid-body: no claim was made, and nobody is left to answer.
    if (body === null) return;
    // Refused before any store call; the connection closes so the rest of the upload is not read.
    if (body === undefined) return answerWith(ctx, problemResponse('payload-too-large'), true);
    // originalUrl: the path as the client sent it, also under koa-mount and routers' prefixes.
    const decision = await engine.begin(engineRequestOf(ctx.req, body, ctx, ctx.originalUrl));
    switch (decision.kind) {
      case 'bypass':
        return next();
      case 'reject':
      case 'replay':
        return answerWith(ctx, decision.response);
      case 'execute':
        return runUnderClaim(ctx, next, decision, engine.options.maxStoredBytes);
      default:
        return decision satisfies never;
    }
  };
}

/**
 * Runs the rest of the chain with the context on `ctx.state` and `ctx.res` captured. The commit
 * happens when Koa (or the handler, with `ctx.respond = false`) ends the response, after this
 * middleware returned; nothing reaches the socket before it.
 */
async function runUnderClaim(
  ctx: KoaContext,
  next: Next,
  decision: ExecuteDecision,
  maxStoredBytes: number,
): Promise<void> {
  const capture = captureResponse(ctx.res, decision, maxStoredBytes);
  keepWritableWhileHeld(ctx, capture);
  ctx.state.idempotency = decision.ctx;
  try {
    await next();
  } catch (error) {
    // Koa's HTTP errors are answers: Koa renders them into the held response, which is stored.
    // Anything else ends the execution here with the sanitised 500; Koa then only reports it.
    if (!isHttpError(error)) await capture.fail(error);
    throw error;
  }
}
