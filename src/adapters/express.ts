import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorRequestHandler, Request, RequestHandler } from 'express';
import { createIdempotency, type Idempotency } from '../core/engine.js';
import type { HandlerContext } from '../core/execution.js';
import type { IdempotencyOptions } from '../core/options.js';
import { problemResponse } from '../core/problem.js';
import type { EngineRequest } from '../core/request.js';
import { requestBody } from './express-body.js';
import { engineRequestOf, sendEngineResponse } from './node-http.js';
import { captureOf, captureResponse } from './node-http-capture.js';
import { exposeContext } from './request-context.js';

export type { WebhookHandler, WebhookReceiverOptions } from '../consumer/receive-webhook.js';
export type { HandlerContext } from '../core/execution.js';
export { keepRawBody, rawBodyOf } from './express-body.js';
export { webhookReceiver } from './express-webhook.js';

declare global {
  namespace Express {
    interface Request {
      /** Present while the request runs under an Idempotency-Key claim; `undefined` otherwise. */
      idempotency?: HandlerContext;
    }
  }
}

type Resolver = (req: Request, request: EngineRequest) => string | undefined | Promise<string | undefined>;

/** The engine's options, with `principal()` and `tenant()` receiving Express's `req`. */
export interface ExpressIdempotencyOptions extends Omit<IdempotencyOptions, 'principal' | 'tenant'> {
  /** The authenticated caller, e.g. `(req) => req.user?.id`. @default SHA-256 of Authorization */
  principal?: Resolver;
  /** The tenant, for multi-tenant apps. @default '' */
  tenant?: Resolver;
}

type Next = (error?: unknown) => void;
type Engine = Pick<Idempotency, 'begin' | 'options'>;

/**
 * Express 4 and 5 middleware: unsafe requests with an `Idempotency-Key` run once, retries get the
 * stored response. `app.use(idempotency(options))`, or per route. Pass options, or an engine from
 * `createIdempotency()` to share one between routes. Add `idempotencyErrors()` after your routes
 * so a handler that throws answers a sanitised 500 and frees the key.
 *
 * Body: with nothing in front, the middleware reads the body itself (within `maxBodyBytes`) and
 * puts it back, so `express.json()` and handlers after it read it as usual. With a parser in
 * front, give the parser `verify: keepRawBody`; without it the middleware falls back on
 * `req.body` (canonical JSON: integers beyond 2^53 have lost precision there).
 *
 * Under a claim the handler gets `req.idempotency` (`downstreamKey()`, `signal`, `fencingToken`,
 * `effectsStarted()`); whatever it writes to `res` is held, stored, then sent.
 * @example
 * app.post('/payments', idempotency({ store }), express.json(), async (req, res) => {
 *   res.status(201).json(await charge(req.body, req.idempotency?.downstreamKey()))
 * })
 * app.use(idempotencyErrors())
 */
export function idempotency(options: ExpressIdempotencyOptions | Idempotency): RequestHandler {
  // The engine hands `principal()`/`tenant()` the native request it was given: always Express's req.
  const engine: Engine = 'begin' in options ? options : createIdempotency(options as IdempotencyOptions);
  const covered = engine.options.methods;

  return function idempotencyMiddleware(req, res, next) {
    if (!covered.has(req.method)) return next();
    decide(engine, req, res, next).catch(next);
  };
}

async function decide(engine: Engine, req: Request, res: ServerResponse, next: Next): Promise<void> {
  const body = await requestBody(req, engine.options.maxBodyBytes);
  if (body === null) return; // the client went away mid-body: nobody to answer
  // Refused before any store call; the connection closes so the rest of the upload is not read.
  if (body === undefined) return sendEngineResponse(res, problemResponse('payload-too-large'), true);
  // originalUrl: the path as the client sent it, also under app.use('/prefix', …) and routers.
  const decision = await engine.begin(engineRequestOf(req, body, req, req.originalUrl));
  switch (decision.kind) {
    case 'bypass':
      return next();
    case 'reject':
    case 'replay':
      return sendEngineResponse(res, decision.response);
    case 'execute': {
      // Found again by idempotencyErrors() and req.idempotency through captureOf(res).
      captureResponse(res, decision, engine.options.maxStoredBytes);
      exposeContext(req, res, decision.ctx);
      return next();
    }
    default:
      return decision satisfies never;
  }
}

/**
 * The error handler to add after your routes (and after your own error handlers, if they pass
 * errors on): `app.use(idempotencyErrors())`. Express hands a handler's throw, `next(err)` or
 * (Express 5) rejection to error handlers, not back to the middleware. For a request under a
 * claim this one ends the execution: the key is released (or held `uncertain` after
 * `effectsStarted()`) and the caller gets the engine's 500 problem, never the error's message or
 * stack. The error is logged as Express's final handler would (`console.error`, except when the
 * app's env is `test`).
 *
 * An error that carries a 4xx `status` (http-errors: a body parser's 400, `sendFile`'s 404) is
 * the client's, and Express answers it with that status: it goes on to the next error handler
 * (or Express's final one), whose answer is captured and classified like any other. So do all
 * errors of requests idemkit did not claim.
 */
export function idempotencyErrors(): ErrorRequestHandler {
  return function idempotencyErrorHandler(error, req, res, next) {
    const capture = captureOf(res);
    if (capture === undefined || isClientError(error)) return next(error);
    logLikeExpress(req, error);
    void capture.fail(error);
  };
}

function isClientError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { status, statusCode } = error as { status?: unknown; statusCode?: unknown };
  const code = typeof status === 'number' ? status : statusCode;
  return typeof code === 'number' && code >= 400 && code < 500;
}

/** Express's final handler logs every error it answers unless the app's env is `test`. */
function logLikeExpress(
  req: IncomingMessage & { app?: { get(name: string): unknown } },
  error: unknown,
): void {
  if (req.app?.get('env') === 'test') return;
  console.error(error instanceof Error ? (error.stack ?? String(error)) : String(error));
}
