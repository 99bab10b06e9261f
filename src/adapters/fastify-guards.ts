import type { FastifyReply, FastifyRequest } from 'fastify';
import { DONE, ENDING, type RequestState, RUNNING, stateOf } from './fastify-state.js';

/*
 * The ways an answer can miss `onSend`, where the plugin ends an execution, and what it does
 * about each: Fastify's own sends around an async handler, and replies answered around Fastify.
 */

/**
 * A second send while the first answer is being committed: Fastify sends `undefined` after an
 * async handler that called `reply.send()` without `return reply` (or a handler timeout fires).
 * The answer being committed is the one that goes out; this send is left pending for good (its
 * onSend `done` is never called, so it is collected with the request), and reported as Fastify
 * reports it.
 */
export function secondSend(reply: FastifyReply): void {
  reply.log.warn(
    `Reply was already sent, did you forget to "return reply" in the "${reply.request.url}" (${reply.request.method}) route?`,
  );
}

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
    const state = stateOf(request);
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

/**
 * The response closed while the execution still runs. If it was answered around Fastify (a
 * hijacked reply, or `reply.raw` written directly), idemkit never saw the answer: the key is held
 * as uncertain, so a retry is refused rather than run twice; returns true then (the caller warns).
 * If the client left before any answer, the handler still owns the execution: its reply ends it
 * in `onSend`.
 */
export function endIfAnsweredAround(state: RequestState, reply: FastifyReply): boolean {
  if (state.phase !== RUNNING || !reply.sent || !state.decision) return false;
  state.phase = DONE;
  state.decision.ctx.effectsStarted();
  void state.decision.abort(
    new Error('the reply was sent around Fastify (hijacked or written to reply.raw)'),
  );
  return true;
}
