import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Idempotency } from '../core/engine.js';
import type { ExecuteDecision } from '../core/execution.js';
import { problemResponse } from '../core/problem.js';
import { type PayloadStream, payloadOf, readPayload } from './fastify-body.js';
import { answer, captureReply, sendEngineResponse, toReplyPayload } from './fastify-reply.js';
import type { RouteSettings } from './fastify-route.js';

/*
 * The plugin's request lifecycle, one hook per step (Fastify runs them in this order):
 *   preParsing  read the raw body within maxBodyBytes (413 before any store call) and hand the
 *               same bytes on to Fastify's parser;
 *   preHandler  begin(): bypass, answer a replay or a problem, or run the handler under a claim
 *               with `request.idempotency` set;
 *   onError     remember that the handler (or a hook after ours) threw;
 *   onSend      the answer as Fastify is about to write it: commit it (or abort on a failure),
 *               then send what the engine returns.
 */

/** Per-request state under a symbol the plugin decorates (one shape for every request). */
export const kState = Symbol('idemkit.fastify.state');

const READING = 0;
const DECIDING = 1;
const RUNNING = 2;
const ENDING = 3;
const DONE = 4;

export class RequestState {
  readonly route: RouteSettings;
  body: Uint8Array = EMPTY;
  phase = READING;
  decision: ExecuteDecision | undefined;
  /** What the handler (or a later hook) threw, seen by `onError` before the error handler ran. */
  failure: unknown;
  failed = false;

  constructor(route: RouteSettings) {
    this.route = route;
  }
}

type StatefulRequest = FastifyRequest & { [kState]: RequestState | null };

export interface PluginHooks {
  preParsing(request: FastifyRequest, reply: FastifyReply, payload: PayloadStream): Promise<unknown>;
  preHandler(request: FastifyRequest, reply: FastifyReply): Promise<unknown>;
  onError(request: FastifyRequest, reply: FastifyReply, error: unknown, done: () => void): void;
  onSend(request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown>;
}

/** The hooks for one registration; `settingsOf` gives a route's settings, or false when it is off. */
export function pluginHooks(
  engine: Idempotency,
  settingsOf: (request: FastifyRequest) => RouteSettings | false,
): PluginHooks {
  const { methods, maxBodyBytes, maxStoredBytes } = engine.options;
  let warnedUnseen = false;

  async function idempotencyPreParsing(
    request: FastifyRequest,
    reply: FastifyReply,
    payload: PayloadStream,
  ): Promise<unknown> {
    if (!methods.has(request.method)) return payload;
    const route = settingsOf(request);
    if (route === false) return payload;
    const state = new RequestState(route);
    (request as StatefulRequest)[kState] = state;
    // A declared length only describes the payload while no earlier hook (decompression) replaced it.
    const declared = payload === request.raw ? Number(request.headers['content-length'] ?? 0) : 0;
    const body = await readPayload(payload, declared, maxBodyBytes);
    if (body === undefined) {
      state.phase = DONE;
      // The rest of the upload is never read: close the connection instead of draining it.
      sendEngineResponse(reply, problemResponse('payload-too-large'), !request.raw.complete);
      return reply;
    }
    state.body = body;
    return payloadOf(body, payload);
  }

  async function idempotencyPreHandler(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const state = (request as StatefulRequest)[kState];
    if (!state || state.phase !== READING) return undefined;
    state.phase = DECIDING;
    const url = request.url;
    const at = url.indexOf('?');
    const decision = await engine.begin({
      method: request.method,
      path: at < 0 ? url : url.slice(0, at),
      query: at < 0 ? '' : url.slice(at + 1),
      headers: request.headers,
      body: state.body,
      native: request,
    });
    switch (decision.kind) {
      case 'bypass':
        state.phase = DONE;
        return undefined;
      case 'reject':
      case 'replay':
        state.phase = DONE;
        return sendEngineResponse(reply, decision.response);
      case 'execute':
        state.decision = decision;
        state.phase = RUNNING;
        request.idempotency = decision.ctx;
        reply.raw.on('close', () => onResponseClosed(state, reply));
        return undefined;
      default:
        return decision satisfies never;
    }
  }

  function idempotencyOnError(
    request: FastifyRequest,
    _reply: FastifyReply,
    error: unknown,
    done: () => void,
  ) {
    const state = (request as StatefulRequest)[kState];
    if (state?.phase === RUNNING) {
      state.failed = true;
      state.failure = error;
    }
    done();
  }

  async function idempotencyOnSend(request: FastifyRequest, reply: FastifyReply, payload: unknown) {
    const state = (request as StatefulRequest)[kState];
    if (!state) return payload;
    if (state.phase === ENDING) return secondSend(reply);
    if (state.phase !== RUNNING) return payload;
    state.phase = ENDING;
    const decision = state.decision as ExecuteDecision;
    try {
      // A thrown error answered with a 4xx (an HTTP error the app chose) is the app's verdict and
      // is captured like any answer; anything else is a failure: never its message, a problem.
      const status = reply.statusCode;
      if (state.failed && (status < 400 || status >= 500)) {
        return toReplyPayload(reply, (await decision.abort(state.failure)).response);
      }
      let captured: Awaited<ReturnType<typeof captureReply>>;
      try {
        captured = await captureReply(reply, payload, maxStoredBytes);
      } catch (error) {
        // The body stream failed before it ended: the answer never existed.
        return toReplyPayload(reply, (await decision.abort(error)).response);
      }
      const result = await decision.commit(captured.response);
      // Past maxStoredBytes the head was committed without the body: the rest streams now,
      // unless the engine answers something else (a lost lease).
      if (captured.rest && result.response.body !== captured.response.body) captured.rest.destroy();
      return answer(reply, captured, result.response);
    } finally {
      state.phase = DONE;
    }
  }

  /**
   * The response closed while the execution still runs. If it was answered around Fastify (a
   * hijacked reply, or `reply.raw` written directly), idemkit never saw the answer: the key is
   * held as uncertain, so a retry is refused rather than run twice. If the client left before
   * any answer, the handler still owns the execution: its reply ends it in `onSend`.
   */
  function onResponseClosed(state: RequestState, reply: FastifyReply): void {
    if (state.phase !== RUNNING || !reply.sent) return;
    state.phase = DONE;
    const decision = state.decision as ExecuteDecision;
    decision.ctx.effectsStarted();
    void decision.abort(new Error('the reply was sent around Fastify (hijacked or written to reply.raw)'));
    if (!warnedUnseen) {
      warnedUnseen = true;
      engine.options.onWarning(
        `idemkit/fastify: ${request(reply)} answered around Fastify (reply.hijack() or reply.raw); its answer cannot be stored, so the key is held as uncertain. Turn idempotency off for such routes: config: { idempotency: false }`,
      );
    }
  }

  return {
    preParsing: idempotencyPreParsing,
    preHandler: idempotencyPreHandler,
    onError: idempotencyOnError,
    onSend: idempotencyOnSend,
  };
}

/**
 * A second send while the first answer is being committed: Fastify sends `undefined` after an
 * async handler that called `reply.send()` without `return reply` (or a handler timeout fires).
 * The answer being committed is the one that goes out; this send is left pending for good (a
 * promise of its own, collected with the request), and reported as Fastify reports it.
 */
function secondSend(reply: FastifyReply): Promise<never> {
  reply.log.warn(
    `Reply was already sent, did you forget to "return reply" in the "${reply.request.url}" (${reply.request.method}) route?`,
  );
  return new Promise<never>(noop);
}

function noop(): void {}

/**
 * An async handler that resolves `undefined` without its answer having reached `onSend` is
 * wrapped, because of what Fastify then does (lib/wrap-thenable.js):
 * - it sends `undefined` itself, even when the handler already called `reply.send()` but did not
 *   `return reply`, and our `onSend` is still committing: the client would get an empty answer.
 *   The wrapper returns the reply instead, so Fastify waits for the committed answer;
 * - it sends nothing once the client has gone, so no `onSend` would end the execution and the
 *   key would stay claimed: the wrapper sends it then, as Fastify would to a live client.
 */
export function wrapHandler<H extends (this: never, request: never, reply: never) => unknown>(handler: H): H {
  const run = handler as unknown as (this: unknown, request: FastifyRequest, reply: FastifyReply) => unknown;
  function idempotentHandler(this: unknown, request: FastifyRequest, reply: FastifyReply): unknown {
    const state = (request as StatefulRequest)[kState];
    const result = run.call(this, request, reply);
    if (!(result instanceof Promise) || !state?.decision) return result;
    return result.then((payload: unknown) => {
      if (payload !== undefined) return payload;
      if (state.phase >= ENDING) return reply;
      if (state.phase === RUNNING && !reply.sent && !reply.raw.headersSent) {
        const socket = request.raw.socket;
        if (request.raw.aborted || !socket || socket.destroyed) reply.send();
      }
      return payload;
    });
  }
  return idempotentHandler as unknown as H;
}

function request(reply: FastifyReply): string {
  return `${reply.request.method} ${reply.request.url}`;
}

const EMPTY = new Uint8Array(0);
