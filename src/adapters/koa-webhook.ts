import type { Middleware } from 'koa';
import {
  receiveWebhook,
  type WebhookHandler,
  type WebhookReceiverOptions,
} from '../consumer/receive-webhook.js';
import { type ParsedRequest, requestBody } from './koa-body.js';
import { answerWith } from './koa-response.js';

const EMPTY = new Uint8Array(0);

/**
 * A webhook endpoint as Koa 3 middleware that answers every request it gets: mount it on the
 * webhook path (`router.all('/webhooks/stripe', webhookReceiver(options, fn))`). The signature is
 * checked on the raw bytes before anything is recorded, then `fn` runs once per event id (see
 * `receiveWebhook` in `idemkit/consumer` for the answers).
 *
 * Body: it reads `ctx.req` itself, so mount it before a body parser; behind one it takes the
 * parser's `ctx.request.rawBody` (koa-bodyparser, @koa/bodyparser). A stream a parser consumed
 * without keeping the raw text throws (Koa answers 500; no record is written).
 * @example
 * router.all('/webhooks/stripe', webhookReceiver({ dedup, scheme: 'stripe', secret }, (event) => fulfil(JSON.parse(event.text))))
 */
export function webhookReceiver(options: WebhookReceiverOptions, handler: WebhookHandler): Middleware {
  const receive = receiveWebhook(options, handler);
  return async function webhookMiddleware(ctx) {
    const isPost = ctx.method.toUpperCase() === 'POST';
    const body = isPost
      ? await requestBody(ctx.request as unknown as ParsedRequest, receive.maxBodyBytes)
      : EMPTY;
    // The client went away mid-body: nobody is left to answer, nothing was written.
    if (body === null) return;
    const answer = await receive({ method: ctx.method, headers: ctx.req.headers, body: body ?? null });
    // Past the limit the rest of the upload is not read: the connection closes after the 413.
    answerWith(ctx, answer, body === undefined);
  };
}
