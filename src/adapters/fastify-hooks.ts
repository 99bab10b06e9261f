import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Idempotency } from '../core/engine.js';
import type { ExecuteDecision } from '../core/execution.js';
import { problemResponse } from '../core/problem.js';
import { type PayloadStream, payloadOf, readPayload } from './fastify-body.js';
import { endIfAnsweredAround, secondSend } from './fastify-guards.js';
import { answer, captureReply, sendEngineResponse, toReplyPayload } from './fastify-reply.js';
import type { RouteSettings } from './fastify-route.js';
import {
  DECIDING,
  DONE,
  ENDING,
  kState,
  READING,
  RequestState,
  RUNNING,
  type StatefulRequest,
  stateOf,
} from './fastify-state.js';

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

export interface PluginHooks {
  preParsing(
    request: FastifyRequest,
    reply: FastifyReply,
    payload: PayloadStream,
    done: (error: Error | null, payload?: PayloadStream) => void,
  ): void;
  preHandler(request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void): void;
  onError(request: FastifyRequest, reply: FastifyReply, error: unknown, done: () => void): void;
  onSend(
    request: FastifyRequest,
    reply: FastifyReply,
    payload: unknown,
    done: (error: Error | null, payload?: unknown) => void,
  ): void;
}

/** The hooks for one registration; `settingsOf` gives a route's settings, or false when it is off. */
export function pluginHooks(
  engine: Idempotency,
  settingsOf: (request: FastifyRequest) => RouteSettings | false,
): PluginHooks {
  const { methods, maxBodyBytes, maxStoredBytes } = engine.options;
  let warnedAround = false;

  // Callback-style hooks: requests the plugin does not cover (GETs, routes turned off, bypassed
  // keys) go through them without a promise or a microtask hop. A hook that answers (413, a
  // replay, a problem) does not call `done`: the request ends with that answer.
  function idempotencyPreParsing(
    request: FastifyRequest,
    reply: FastifyReply,
    payload: PayloadStream,
    done: (error: Error | null, payload?: PayloadStream) => void,
  ): void {
    const route = methods.has(request.method) ? settingsOf(request) : false;
    if (route === false) {
      done(null, payload);
      return;
    }
    const state = new RequestState(route);
    (request as StatefulRequest)[kState] = state;
    // Headers only describe the payload while no earlier hook (decompression) replaced it.
    const untouched = payload === request.raw;
    if (untouched && hasNoBody(request)) {
      done(null, payload);
      return;
    }
    const declared = untouched ? Number(request.headers['content-length'] ?? 0) : 0;
    readPayload(payload, declared, maxBodyBytes).then((body) => {
      if (body !== undefined) {
        state.body = body;
        done(null, payloadOf(body, payload));
        return;
      }
      state.phase = DONE;
      // The rest of the upload is never read: close the connection instead of draining it.
      sendEngineResponse(reply, problemResponse('payload-too-large'), !request.raw.complete);
    }, done);
  }

  function idempotencyPreHandler(
    request: FastifyRequest,
    reply: FastifyReply,
    done: (error?: Error) => void,
  ) {
    const state = stateOf(request);
    if (!state || state.phase !== READING) {
      done();
      return;
    }
    state.phase = DECIDING;
    const url = request.url;
    const at = url.indexOf('?');
    const begun = engine.begin({
      method: request.method,
      path: at < 0 ? url : url.slice(0, at),
      query: at < 0 ? '' : url.slice(at + 1),
      headers: request.headers,
      body: state.body,
      native: request,
    });
    begun.then((decision) => {
      switch (decision.kind) {
        case 'bypass':
          state.phase = DONE;
          done();
          return;
        case 'reject':
        case 'replay':
          state.phase = DONE;
          sendEngineResponse(reply, decision.response);
          return;
        case 'execute':
          state.decision = decision;
          state.phase = RUNNING;
          request.idempotency = decision.ctx;
          reply.raw.on('close', () => onResponseClosed(state, reply));
          done();
          return;
        default:
          decision satisfies never;
      }
    }, done);
  }

  function idempotencyOnError(
    request: FastifyRequest,
    _reply: FastifyReply,
    error: unknown,
    done: () => void,
  ) {
    const state = stateOf(request);
    if (state?.phase === RUNNING) {
      state.failed = true;
      state.failure = error;
    }
    done();
  }

  function idempotencyOnSend(
    request: FastifyRequest,
    reply: FastifyReply,
    payload: unknown,
    done: (error: Error | null, payload?: unknown) => void,
  ): void {
    const state = stateOf(request);
    if (state?.phase === ENDING) {
      secondSend(reply);
      return;
    }
    if (state?.phase !== RUNNING) {
      done(null, payload);
      return;
    }
    state.phase = ENDING;
    endExecution(state, reply, payload).then((answered) => done(null, answered), done);
  }

  /** The answer Fastify is about to write ends the execution: committed, or a problem if it failed. */
  async function endExecution(state: RequestState, reply: FastifyReply, payload: unknown): Promise<unknown> {
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

  function onResponseClosed(state: RequestState, reply: FastifyReply): void {
    if (!endIfAnsweredAround(state, reply) || warnedAround) return;
    warnedAround = true;
    engine.options.onWarning(
      `idemkit/fastify: ${reply.request.method} ${reply.request.url} answered around Fastify (reply.hijack() or reply.raw); its answer cannot be stored, so the key is held as uncertain. Turn idempotency off for such routes: config: { idempotency: false }`,
    );
  }

  return {
    preParsing: idempotencyPreParsing,
    preHandler: idempotencyPreHandler,
    onError: idempotencyOnError,
    onSend: idempotencyOnSend,
  };
}

/**
 * An HTTP/1 request with `Content-Length: 0`, or with neither it nor `Transfer-Encoding`, has no
 * body (RFC 9112 §6.3); HTTP/2 frames bodies itself. Nothing to read then.
 */
function hasNoBody(request: FastifyRequest): boolean {
  const declared = request.headers['content-length'];
  if (declared === '0') return true;
  return (
    declared === undefined &&
    request.headers['transfer-encoding'] === undefined &&
    request.raw.httpVersionMajor < 2
  );
}
