import type { ServerResponse } from 'node:http';
import type { CallHandler, ExecutionContext, NestInterceptor } from '@nestjs/common';
import { HttpException, Inject, Injectable, StreamableFile } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { catchError, from, mergeMap, type Observable, of, tap, throwError } from 'rxjs';
import type { ExecuteDecision } from '../core/decision.js';
import { IdempotencyConfigError } from '../core/errors.js';
import { problemResponse } from '../core/problem.js';
import { requestBytes } from './nestjs-body.js';
import {
  answerInPlace,
  type NestRequest,
  type NestResponse,
  rawRequestOf,
  rawResponseOf,
  silence,
} from './nestjs-platform.js';
import { IDEMPOTENT_METADATA, type IdempotentSettings, type NestSetup } from './nestjs-settings.js';
import { engineRequestOf } from './node-http.js';
import { captureResponse } from './node-http-capture.js';
import { exposeContext } from './request-context.js';

/** The injection token of the interceptor's setup (the engine and the handler settings). */
export const IDEMPOTENCY_SETUP = Symbol('idemkit.nestjs.setup');

/** Requests an IdempotencyInterceptor has taken: bound globally and by `@Idempotent()`, it runs once. */
const taken = new WeakSet<object>();
const reflector = new Reflector();

/**
 * The Nest interceptor: unsafe requests with an `Idempotency-Key` run once, retries get the
 * stored response (status, headers and bytes as the engine returns them; the handler does not
 * run). Bind it with `@Idempotent()`, `@UseInterceptors(IdempotencyInterceptor)` or globally as
 * `APP_INTERCEPTOR`; it needs `IdempotencyModule.forRoot()`.
 *
 * Under a claim, whatever Nest writes for the handler is captured on the Node response
 * underneath (Express's `res`, Fastify's `reply.raw`): a returned value, `@HttpCode()`,
 * `@Header()`, `@Res()` writes, a `StreamableFile`, an exception filter's answer to an
 * `HttpException`. It is stored, then sent. Any other error ends the execution (the key is
 * freed, or held as uncertain after `effectsStarted()`) with a sanitised 500, and still reaches
 * Nest's exception layer, which logs it.
 */
export class IdempotencyInterceptor implements NestInterceptor {
  private readonly setup: NestSetup;

  constructor(setup: NestSetup) {
    this.setup = setup;
  }

  intercept(
    context: ExecutionContext,
    next: CallHandler,
  ): Observable<unknown> | Promise<Observable<unknown>> {
    if (context.getType() !== 'http') return next.handle();
    const request = context.switchToHttp().getRequest<NestRequest>();
    const raw = rawRequestOf(request);
    if (taken.has(raw) || !this.setup.engine.options.methods.has((raw.method ?? 'GET').toUpperCase())) {
      return next.handle();
    }
    taken.add(raw);
    const settings = settingsOf(context);
    if (settings === false) return next.handle();
    return this.decide(context, next, request, settings);
  }

  private async decide(
    context: ExecutionContext,
    next: CallHandler,
    request: NestRequest,
    settings: IdempotentSettings | undefined,
  ): Promise<Observable<unknown>> {
    const { engine } = this.setup;
    const framework = context.switchToHttp().getResponse<NestResponse>();
    const res = rawResponseOf(framework);
    const raw = rawRequestOf(request);
    const body = await requestBytes(request, raw, engine.options.maxBodyBytes);
    if (body === undefined) {
      // Refused before any store call; the connection closes so the rest of the upload is not read.
      answerInPlace(framework, res, problemResponse('payload-too-large'), true);
      return of(undefined);
    }
    if (settings && Object.keys(settings).length > 0) {
      if (this.setup.shared) throw sharedEngineError(context);
      this.setup.settings.set(request, settings);
    }
    const target = request.originalUrl ?? raw.url ?? '/';
    const decision = await engine.begin(engineRequestOf(raw, body, request, target));
    switch (decision.kind) {
      case 'bypass':
        return next.handle();
      case 'reject':
      case 'replay':
        answerInPlace(framework, res, decision.response);
        return of(undefined);
      case 'execute':
        return execute(decision, request, framework, res, next, engine.options.maxStoredBytes);
      default:
        return decision satisfies never;
    }
  }
}

Injectable()(IdempotencyInterceptor);
Inject(IDEMPOTENCY_SETUP)(IdempotencyInterceptor, undefined, 0);

/** The handler's `@Idempotent()` settings over its controller's; `false` on the handler wins. */
function settingsOf(context: ExecutionContext): IdempotentSettings | undefined {
  const own = reflector.get<IdempotentSettings | undefined>(IDEMPOTENT_METADATA, context.getHandler());
  if (own === false) return false;
  const shared = reflector.get<IdempotentSettings | undefined>(IDEMPOTENT_METADATA, context.getClass());
  if (shared === undefined || own === undefined) return own ?? shared;
  return shared === false ? own : { ...shared, ...own };
}

function execute(
  decision: ExecuteDecision,
  request: NestRequest,
  framework: NestResponse,
  res: ServerResponse,
  next: CallHandler,
  maxStoredBytes: number,
): Observable<unknown> {
  const capture = captureResponse(res, decision, maxStoredBytes);
  exposeContext(request, res, decision.ctx);
  function fail(error: unknown): Promise<void> {
    // Silenced only once idemkit's answer went out: while a commit is still in flight (the
    // handler had answered), its own send must find the response as it was.
    return capture.fail(error).then(() => {
      if (res.writableEnded || res.destroyed) silence(framework, res);
    });
  }
  return next.handle().pipe(
    tap((value) => {
      // Nest answers a file stream that fails before its first byte with a 400 of its own, which
      // would be stored as the operation's verdict. A failure is not a verdict: end the execution.
      if (value instanceof StreamableFile) value.getStream().once('error', (error) => void fail(error));
    }),
    catchError((error: unknown) => {
      // An HttpException is the handler's answer: Nest's exception filter writes it, captured
      // like any response. Anything else is a failure; Nest still gets it, to log.
      if (isIntentional(error)) return throwError(() => error);
      return from(fail(error)).pipe(mergeMap(() => throwError(() => error)));
    }),
  );
}

/**
 * What Nest's own exception filter answers with the error's status: an HttpException, or an
 * http-errors 4xx (`createError(404)`). Their message is meant for the client.
 */
function isIntentional(error: unknown): boolean {
  if (error instanceof HttpException) return true;
  const e = error as { statusCode?: unknown; status?: unknown; expose?: unknown };
  return (
    error instanceof Error &&
    typeof e.expose === 'boolean' &&
    typeof e.statusCode === 'number' &&
    e.statusCode === e.status &&
    e.statusCode >= 400 &&
    e.statusCode < 500
  );
}

function sharedEngineError(context: ExecutionContext): IdempotencyConfigError {
  const where = `${context.getClass().name}.${context.getHandler().name}`;
  return new IdempotencyConfigError(
    `${where}: @Idempotent() sets options, but IdempotencyModule was given a ready-made engine whose options are fixed; pass options to forRoot() instead`,
  );
}
