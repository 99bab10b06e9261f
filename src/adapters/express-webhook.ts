import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import {
  receiveWebhook,
  type WebhookHandler,
  type WebhookReceiverOptions,
} from '../consumer/receive-webhook.js';
import { IdempotencyConfigError } from '../core/errors.js';
import { problemResponse } from '../core/problem.js';
import { rawBodyOf } from './express-body.js';
import { readNodeBody, sendEngineResponse } from './node-http.js';

/** What body parsers leave on Express's request; typed here as the subset read. */
interface ParsedRequest extends IncomingMessage {
  /** Set by body-parser 1.x (Express 4) once it has read the stream. */
  _body?: boolean;
  body?: unknown;
}

const EMPTY = new Uint8Array(0);

export const PARSED_WITHOUT_RAW_BODY =
  'idemkit/express webhookReceiver(): a body parser read this request before it and left no raw bytes ' +
  'to verify the signature on; mount the receiver before express.json(), or give the parser ' +
  '`verify: keepRawBody`, or use express.raw() on the webhook route';

/**
 * A webhook endpoint as Express 4 / 5 middleware: `app.post('/webhooks/stripe',
 * webhookReceiver(options, fn))` (`app.all` to answer other methods 405). The signature is
 * checked on the raw bytes before anything is recorded, then `fn` runs once per event id (see
 * `receiveWebhook` in `idemkit/consumer` for the answers).
 *
 * Body: mount it before any JSON parser, or it finds the bytes a parser kept (`express.raw()`
 * leaves a Buffer; `express.json({ verify: keepRawBody })` keeps them). A body parsed without its
 * bytes cannot be verified: that is a setup error, reported to `onError` and answered 500
 * `invalid-options`, with no record written.
 * @example
 * app.post('/webhooks/stripe', webhookReceiver({ dedup, scheme: 'stripe', secret }, (event) => fulfil(JSON.parse(event.text))))
 * app.use(express.json()) // after: other routes parse JSON as usual
 */
export function webhookReceiver(options: WebhookReceiverOptions, handler: WebhookHandler): RequestHandler {
  const receive = receiveWebhook(options, handler);
  const onError = options.onError ?? ((error: unknown) => console.error(error));

  async function answer(req: ParsedRequest, res: ServerResponse): Promise<void> {
    const isPost = (req.method ?? '').toUpperCase() === 'POST';
    let body: Uint8Array | null | undefined;
    try {
      body = isPost ? rawBytesOf(req) : EMPTY;
    } catch (error) {
      // A setup error: reported, and answered like any 500 (Express would print the message).
      onError(error);
      return sendEngineResponse(res, problemResponse('invalid-options'));
    }
    if (body === undefined) {
      try {
        body = (await readNodeBody(req, receive.maxBodyBytes)) ?? null;
      } catch {
        return; // the client went away mid-body: nobody is left to answer, nothing was written
      }
    }
    const tooLarge = body === null;
    // Past the limit the rest of the upload is not read: the connection closes after the 413.
    sendEngineResponse(
      res,
      await receive({ method: req.method ?? 'GET', headers: req.headers, body }),
      tooLarge,
    );
  }

  return function webhookMiddleware(req, res, next) {
    answer(req, res).catch(next);
  };
}

/** Bytes a parser in front kept, `undefined` when the stream is unread (read it then). */
function rawBytesOf(req: ParsedRequest): Uint8Array | undefined {
  const kept = rawBodyOf(req);
  if (kept !== undefined) return kept;
  const consumed = req._body === true || req.readableEnded || req.readableDidRead;
  if (!consumed) return undefined;
  if (req.body instanceof Uint8Array) return req.body; // express.raw()
  throw new IdempotencyConfigError(PARSED_WITHOUT_RAW_BODY);
}
