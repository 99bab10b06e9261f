import { errors } from 'undici';
import { IdempotencyError } from '../core/errors.js';
import { type Disposition, defaultClassify } from '../core/options.js';
import type { EngineResponse } from '../core/response.js';

/*
 * Did the upstream possibly act? That decides whether a failed covered request frees its key.
 * undici calls a dispatch handler's `onRequestStart` right before it writes the request on a
 * connected socket (client-h1 writeH1 → request.onConnect); proxy.ts's answer reader records it.
 * Every error raised before that — connection refused, DNS failure, connect timeout, a header
 * undici refuses while building the request — provably sent nothing. Everything after it may
 * have reached the upstream.
 */

/** An upstream failure, with whether the request may have reached the upstream. */
export class UpstreamError extends IdempotencyError {
  override readonly name = 'UpstreamError';
  /** False only when nothing of the request was written: retrying cannot run it twice. */
  readonly requestSent: boolean;

  constructor(cause: unknown, requestSent: boolean) {
    const timedOut =
      cause instanceof errors.HeadersTimeoutError ||
      cause instanceof errors.BodyTimeoutError ||
      cause instanceof errors.ConnectTimeoutError;
    super(
      timedOut ? 'upstream-timeout' : 'upstream-unavailable',
      timedOut ? 'the upstream did not answer in time' : 'the upstream failed',
      { cause },
    );
    this.requestSent = requestSent;
  }
}

/** What a log line may say about a cause: its name and code, never its message (hosts, bodies). */
export function describeCause(error: unknown): { cause: string; code?: string } {
  const inner = error instanceof UpstreamError ? error.cause : error;
  if (!(inner instanceof Error)) return { cause: typeof inner };
  const code = (inner as { code?: unknown }).code;
  return typeof code === 'string' ? { cause: inner.name, code } : { cause: inner.name };
}

/**
 * The engine's `classify` for the gateway. A 5xx the upstream itself answered came after it got
 * the request, so it may have acted: hold the key (`uncertain`) unless the route's upstream
 * de-duplicates on the forwarded key. Problems the gateway renders are not marked and keep the
 * engine's default (an abort after `effectsStarted()` is held by the engine itself).
 */
export function upstreamClassifier() {
  const answers = new WeakSet<EngineResponse>();
  return {
    /** Marks the upstream's own answer, before it is committed. */
    mark(response: EngineResponse): EngineResponse {
      answers.add(response);
      return response;
    },
    classify(response: EngineResponse, upstreamDedupes: boolean): Disposition {
      const disposition = defaultClassify(response);
      const ambiguous = response.status >= 500 && answers.has(response) && !upstreamDedupes;
      return disposition === 'release' && ambiguous ? 'uncertain' : disposition;
    },
  };
}
