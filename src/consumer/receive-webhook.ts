import type { HandlerContext } from '../core/decision.js';
import { isIdempotencyError } from '../core/errors.js';
import { problemResponse } from '../core/problem.js';
import type { HeaderInput } from '../core/request.js';
import { type EngineResponse, REPLAYED_HEADER } from '../core/response.js';
import type { Deduplicator } from './deduplicator.js';
import {
  type VerifiedWebhook,
  type VerifyWebhookOptions,
  verifyWebhook,
  type WebhookFailure,
  WebhookVerificationError,
} from './verify-webhook.js';

/*
 * The HTTP side of a webhook endpoint, without a framework: method, size, signature, then
 * once(). Each framework wrapper only reads the raw body and writes the answer below.
 *
 *   POST? ─ no ─▶ 405           body ≤ maxBodyBytes? ─ no ─▶ 413
 *   verifyWebhook ─ fails ─▶ 401 webhook-<reason>           (nothing written)
 *   dedup.once(event, handler)
 *     ├ processed / duplicate ─▶ 200 (a duplicate says Idempotent-Replayed: true)
 *     ├ still running elsewhere ─▶ 409 in-progress, Retry-After   (the sender retries later)
 *     ├ handler threw ─▶ 500 handler-error   (not marked processed: the retry runs it again)
 *     └ an idemkit refusal (outcome-uncertain, store-unavailable, …) ─▶ its problem response
 */

/** The problem `type` of a webhook refusal: `urn:idemkit:problem:webhook-<reason>`. */
export type WebhookProblemType = `urn:idemkit:problem:webhook-${WebhookFailure | 'method-not-allowed'}`;

/** What the endpoint is: who signs, with which secret, and where processed ids are kept. */
export interface WebhookReceiverOptions
  extends Pick<VerifyWebhookOptions, 'scheme' | 'secret' | 'toleranceSeconds' | 'source' | 'now'> {
  /** The deduplicator that remembers processed event ids (`createDeduplicator()`). */
  dedup: Pick<Deduplicator, 'once'>;
  /**
   * The largest body accepted; a larger one gets 413 and is not read further.
   * @default 1_048_576 (1 MiB)
   */
  maxBodyBytes?: number;
  /**
   * Told about a handler that threw (the sender gets a bare 500 and redelivers), with the event;
   * and about a setup error of a framework wrapper (a body parsed without its bytes), without.
   * Use it to log.
   * @default console.error
   */
  onError?: (error: unknown, event?: VerifiedWebhook) => void;
}

/** Your code for a verified event: runs once per event id; its result is stored as JSON. */
export type WebhookHandler = (event: VerifiedWebhook, ctx: HandlerContext) => unknown;

/** A request as a framework wrapper hands it over. */
export interface WebhookRequest {
  method: string;
  headers: HeaderInput;
  /**
   * The raw body exactly as received; `null` when the wrapper stopped reading past `maxBodyBytes`
   * (answered 413).
   */
  body: Uint8Array | string | null;
}

/** The answer: status, header lines, body bytes (what every adapter already knows how to send). */
export type WebhookAnswer = EngineResponse;

/** A webhook endpoint as a function of one request; `maxBodyBytes` tells wrappers where to stop reading. */
export interface WebhookReceiver {
  (request: WebhookRequest): Promise<WebhookAnswer>;
  readonly maxBodyBytes: number;
}

const DEFAULT_MAX_BODY_BYTES = 1_048_576;
const PROBLEM_PREFIX = 'urn:idemkit:problem:';

const TITLES: Readonly<Record<WebhookFailure, string>> = Object.freeze({
  'missing-signature': 'The webhook carries no signature',
  'bad-signature': 'The webhook signature does not match',
  'stale-timestamp': 'The webhook timestamp is outside the tolerance',
  'missing-id': 'The webhook carries no event id',
});

/**
 * A framework-neutral webhook endpoint: verifies the signature on the raw body before anything is
 * recorded, then runs `handler` once per event id with `dedup.once()`, and maps every outcome to
 * an HTTP answer the sender understands (2xx: done; anything else: redeliver). The framework
 * wrappers (`webhookReceiver` in `idemkit/express`, `/fastify`, `/koa`, `/hono`, `/fetch`,
 * `/nestjs`) are built on it.
 * @example
 * const receive = receiveWebhook({ dedup, scheme: 'stripe', secret }, (event) => fulfil(JSON.parse(event.text)))
 * const { status, headers, body } = await receive({ method: 'POST', headers: req.headers, body: rawBytes })
 */
export function receiveWebhook(options: WebhookReceiverOptions, handler: WebhookHandler): WebhookReceiver {
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 0) {
    throw new TypeError(
      `receiveWebhook: maxBodyBytes must be a non-negative integer, got ${String(maxBodyBytes)}`,
    );
  }
  if (typeof options.dedup?.once !== 'function') {
    throw new TypeError('receiveWebhook: dedup must be a deduplicator (createDeduplicator())');
  }
  if (typeof handler !== 'function') throw new TypeError('receiveWebhook: handler must be a function');
  const onError = options.onError ?? ((error: unknown) => console.error(error));
  const verifyOptions = {
    scheme: options.scheme,
    secret: options.secret,
    ...(options.toleranceSeconds === undefined ? {} : { toleranceSeconds: options.toleranceSeconds }),
    ...(options.source === undefined ? {} : { source: options.source }),
    ...(options.now === undefined ? {} : { now: options.now }),
  };

  async function receive(request: WebhookRequest): Promise<WebhookAnswer> {
    if (request.method.toUpperCase() !== 'POST') {
      return problem('webhook-method-not-allowed', 405, 'Webhooks are delivered with POST', [
        ['allow', 'POST'],
      ]);
    }
    const body = request.body;
    const size = body === null ? Number.POSITIVE_INFINITY : byteLength(body);
    if (size > maxBodyBytes) return problemResponse('payload-too-large');

    let event: VerifiedWebhook;
    try {
      event = verifyWebhook({
        ...verifyOptions,
        headers: request.headers,
        body: body as Uint8Array | string,
      });
    } catch (error) {
      if (!isVerificationError(error)) throw error;
      return problem(`webhook-${error.reason}`, 401, TITLES[error.reason], [], error.message);
    }

    let outcome: 'processed' | 'duplicate';
    try {
      outcome = (await options.dedup.once(event, (ctx) => handler(event, ctx))).status;
    } catch (error) {
      if (isIdempotencyError(error)) {
        // Still running elsewhere: the sender should come back when that run is likely done.
        const retryAfterMs = (error as { retryAfterMs?: unknown }).retryAfterMs;
        if (typeof retryAfterMs === 'number')
          return withRetryAfter(problemResponse(error.code), retryAfterMs);
        return problemResponse(error.code);
      }
      // The handler's own failure: a bare 500 (its message may name hosts or SQL), not processed.
      onError(error, event);
      return problemResponse('handler-error');
    }
    const headers: [string, string][] = [
      ['content-type', 'application/json'],
      ['cache-control', 'no-store'],
    ];
    if (outcome === 'duplicate') headers.push([REPLAYED_HEADER, 'true']);
    const answer = { id: event.id, status: outcome };
    return { status: 200, headers, body: Buffer.from(JSON.stringify(answer), 'utf8') };
  }

  return Object.assign(receive, { maxBodyBytes });
}

function byteLength(body: Uint8Array | string): number {
  return typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.byteLength;
}

/** `instanceof`, or the same class from another copy of idemkit. */
function isVerificationError(error: unknown): error is WebhookVerificationError {
  if (error instanceof WebhookVerificationError) return true;
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { name?: unknown }).name === 'WebhookVerificationError' &&
    typeof (error as { reason?: unknown }).reason === 'string' &&
    (error as { reason: string }).reason in TITLES
  );
}

/** An RFC 9457 answer in the same shape and `type` scheme as the core's problem responses. */
function problem(
  slug: string,
  status: number,
  title: string,
  extra: [string, string][] = [],
  detail: string = title,
): WebhookAnswer {
  const body = { type: `${PROBLEM_PREFIX}${slug}`, title, status, detail };
  return {
    status,
    headers: [['content-type', 'application/problem+json'], ['cache-control', 'no-store'], ...extra],
    body: Buffer.from(JSON.stringify(body), 'utf8'),
  };
}

function withRetryAfter(answer: WebhookAnswer, retryAfterMs: number): WebhookAnswer {
  const seconds = String(Math.max(1, Math.ceil(retryAfterMs / 1_000)));
  const headers = answer.headers.filter(([name]) => name !== 'retry-after');
  headers.push(['retry-after', seconds]);
  return { ...answer, headers };
}
