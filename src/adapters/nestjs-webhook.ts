import {
  receiveWebhook,
  type WebhookHandler,
  type WebhookReceiverOptions,
} from '../consumer/receive-webhook.js';
import { requestBytes } from './nestjs-body.js';
import { type NestRequest, type NestResponse, rawRequestOf, rawResponseOf } from './nestjs-platform.js';
import { sendEngineResponse } from './node-http.js';

/** Fastify's reply: `hijack()` tells Fastify the route answers on `reply.raw` itself. */
interface Hijackable extends NestResponse {
  hijack?: () => unknown;
}

const EMPTY = new Uint8Array(0);

/**
 * A webhook endpoint for a NestJS controller, on the Express or the Fastify platform. Call it
 * from a handler that takes `@Req()` and `@Res()`; it answers on the response itself. The
 * signature is checked on the raw bytes before anything is recorded, then `fn` runs once per
 * event id (see `receiveWebhook` in `idemkit/consumer` for the answers).
 *
 * Body: create the app with `NestFactory.create(AppModule, { rawBody: true })` so Nest keeps the
 * bytes its JSON parser read; a body parsed without them cannot be verified and throws (Nest
 * answers 500, no record is written).
 * @example
 * private readonly stripe = webhookReceiver({ dedup, scheme: 'stripe', secret }, (event) => fulfil(JSON.parse(event.text)))
 * @Post('webhooks/stripe') receive(@Req() req: Request, @Res() res: Response) { return this.stripe(req, res) }
 */
export function webhookReceiver(
  options: WebhookReceiverOptions,
  handler: WebhookHandler,
): (request: object, response: object) => Promise<void> {
  const receive = receiveWebhook(options, handler);
  return async function receiveNestWebhook(request: object, response: object): Promise<void> {
    const req = request as NestRequest;
    const raw = rawRequestOf(req);
    const method = raw.method ?? 'GET';
    const body = method.toUpperCase() === 'POST' ? await requestBytes(req, raw, receive.maxBodyBytes) : EMPTY;
    const answer = await receive({ method, headers: raw.headers, body: body ?? null });
    const reply = response as Hijackable;
    if (typeof reply.hijack === 'function') reply.hijack();
    // Past the limit the rest of the upload is not read: the connection closes after the 413.
    sendEngineResponse(rawResponseOf(reply), answer, body === undefined);
  };
}
