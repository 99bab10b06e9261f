import {
  receiveWebhook,
  type WebhookHandler,
  type WebhookReceiverOptions,
} from '../consumer/receive-webhook.js';
import { createIdempotency, type Idempotency } from '../core/engine.js';
import type { FetchHandler } from '../core/fetch-flow.js';
import type { IdempotencyOptions } from '../core/options.js';
import { receiveFetchWebhook } from './fetch-webhook.js';

export type { WebhookHandler, WebhookReceiverOptions } from '../consumer/receive-webhook.js';
export type { HandlerContext } from '../core/execution.js';
export type { FetchHandler } from '../core/fetch-flow.js';

/**
 * Wraps a Web `Request → Response` handler (Next.js route handlers, Bun, Deno, Workers, Hono's
 * `app.fetch`) so unsafe requests with an `Idempotency-Key` run once and retries get the replay.
 * Pass options, or an engine from `createIdempotency()` to share one between handlers.
 *
 * A keyed request needs a principal: by default the `Authorization` header (or your
 * `principal()`); without one it gets 401 `principal-required`, unless you opt into the shared
 * anonymous scope with `requirePrincipal: false`.
 * @example
 * export const POST = withIdempotency(async (req, ctx) => Response.json(await charge(req)), { store })
 */
export function withIdempotency(
  handler: FetchHandler,
  options: IdempotencyOptions | Idempotency,
): (request: Request) => Promise<Response> {
  const engine = 'begin' in options ? options : createIdempotency(options);
  return function idempotentHandler(request: Request): Promise<Response> {
    return engine.handle(request, handler);
  };
}

/**
 * A webhook endpoint as a Web `Request → Response` handler (Next.js route handlers, Bun, Deno,
 * Workers): the signature is checked on the raw bytes before anything is recorded, then
 * `handler` runs once per event id (see `receiveWebhook` in `idemkit/consumer` for the answers).
 * @example
 * const dedup = createDeduplicator({ store })
 * export const POST = webhookReceiver({ dedup, scheme: 'stripe', secret }, (event) => fulfil(JSON.parse(event.text)))
 */
export function webhookReceiver(
  options: WebhookReceiverOptions,
  handler: WebhookHandler,
): (request: Request) => Promise<Response> {
  const receive = receiveWebhook(options, handler);
  return function webhookHandler(request: Request): Promise<Response> {
    return receiveFetchWebhook(receive, request);
  };
}
