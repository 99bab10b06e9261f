import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import {
  receiveWebhook,
  type WebhookHandler,
  type WebhookReceiverOptions,
} from '../consumer/receive-webhook.js';
import { problemResponse } from '../core/problem.js';
import { sendEngineResponse } from './fastify-reply.js';

/** Where the endpoint is, with the receiver's options. */
export interface FastifyWebhookOptions extends WebhookReceiverOptions {
  /** The route's path, e.g. `/webhooks/stripe` (under the prefix the plugin is registered with). */
  url: string;
}

const EMPTY = new Uint8Array(0);
const METHODS = ['DELETE', 'GET', 'PATCH', 'POST', 'PUT'];

/**
 * A webhook endpoint as a Fastify 5 plugin: `await app.register(webhookReceiver({ url, dedup,
 * scheme, secret }, fn))`. The plugin is encapsulated: inside it every content type is read as
 * raw bytes (within `maxBodyBytes`, else 413), so the signature is checked on what the sender
 * signed, while the rest of the app keeps its JSON parser. Then `fn` runs once per event id (see
 * `receiveWebhook` in `idemkit/consumer` for the answers); other methods get 405.
 * @example
 * await app.register(webhookReceiver({ url: '/webhooks/stripe', dedup, scheme: 'stripe', secret }, (event) => fulfil(JSON.parse(event.text))))
 */
export function webhookReceiver(options: FastifyWebhookOptions, handler: WebhookHandler): FastifyPluginAsync {
  const receive = receiveWebhook(options, handler);
  return async function webhookPlugin(fastify: FastifyInstance): Promise<void> {
    fastify.removeAllContentTypeParsers();
    fastify.addContentTypeParser(
      '*',
      { parseAs: 'buffer', bodyLimit: receive.maxBodyBytes },
      function keepBytes(_request, body, done) {
        done(null, body);
      },
    );
    fastify.route({
      method: METHODS,
      url: options.url,
      async handler(request, reply) {
        const body = request.body instanceof Uint8Array ? request.body : EMPTY;
        return sendEngineResponse(
          reply,
          await receive({ method: request.method, headers: request.headers, body }),
        );
      },
      // Fastify refuses a body over the parser's limit before the handler: answer it our way.
      errorHandler(error, _request, reply) {
        if ((error as { statusCode?: unknown }).statusCode === 413) {
          // The rest of the upload is not read: the connection closes after the 413.
          return sendEngineResponse(reply, problemResponse('payload-too-large'), true);
        }
        return reply.send(error);
      },
    });
  };
}
