import type { Context, Handler, MiddlewareHandler } from 'hono';
import {
  receiveWebhook,
  type WebhookHandler,
  type WebhookReceiverOptions,
} from '../consumer/receive-webhook.js';
import { createIdempotency, type Idempotency } from '../core/engine.js';
import type { HandlerContext } from '../core/execution.js';
import { handleFetch } from '../core/fetch-flow.js';
import type { IdempotencyOptions } from '../core/options.js';
import type { EngineRequest } from '../core/request.js';
import { receiveFetchWebhook } from './fetch-webhook.js';

export type { WebhookHandler, WebhookReceiverOptions } from '../consumer/receive-webhook.js';
export type { HandlerContext } from '../core/execution.js';

/**
 * The context variable the middleware sets. Type your app with it so handlers see
 * `c.get('idempotency')` / `c.var.idempotency` typed:
 * `new Hono<{ Variables: IdempotencyVariables }>()`. (Inline, `app.post(path, idempotency(o), h)`
 * types `h` without it.)
 */
export interface IdempotencyVariables {
  /** Present while the request runs under a claim; `undefined` when idemkit let it through. */
  idempotency: HandlerContext | undefined;
}

type Resolver = (c: Context, request: EngineRequest) => string | undefined | Promise<string | undefined>;

/** The engine's options, with `principal()` and `tenant()` receiving Hono's `Context`. */
export interface HonoIdempotencyOptions extends Omit<IdempotencyOptions, 'principal' | 'tenant'> {
  /** The authenticated caller, e.g. `(c) => c.get('jwtPayload')?.sub`. @default SHA-256 of Authorization */
  principal?: Resolver;
  /** The tenant, for multi-tenant apps. @default '' */
  tenant?: Resolver;
}

/**
 * Hono 4 middleware: unsafe requests with an `Idempotency-Key` run once, retries get the stored
 * response. `app.use('/payments/*', idempotency(options))` or `app.post(path, idempotency(options),
 * handler)`. Pass options, or an engine from `createIdempotency()` to share one between routes.
 *
 * It runs the engine's fetch flow on `c.req.raw`: the body is read once (within `maxBodyBytes`)
 * and `c.req.raw` is replaced by a rebuilt request, so `await c.req.json()` still works. What the
 * handlers and the middleware after this one answer (`c.res`) is captured, stored, then sent.
 * A thrown `HTTPException` is an answer and is stored like a returned response; any other
 * throw ends the execution and answers a sanitised 500 problem.
 * @example
 * const app = new Hono<{ Variables: IdempotencyVariables }>()
 * app.use('/payments/*', idempotency({ store: memoryStore() }))
 * app.post('/payments', async (c) => c.json(await charge(await c.req.json(), c.var.idempotency), 201))
 */
export function idempotency(
  options: HonoIdempotencyOptions | Idempotency,
): MiddlewareHandler<{ Variables: IdempotencyVariables }> {
  // The engine hands `principal()`/`tenant()` the native request it was given: always the Context.
  const engine = 'begin' in options ? options : createIdempotency(options as IdempotencyOptions);

  return async function idempotencyMiddleware(c, next) {
    let handlersRan = false;
    async function runDownstream(request: Request, ctx?: HandlerContext): Promise<Response> {
      handlersRan = true;
      c.req.raw = request;
      if (ctx) c.set('idempotency', ctx);
      await next();
      // Hono's compose catches a handler's throw, runs onError and sets c.error; next() resolves.
      // Under a claim the throw must reach the fetch flow, which aborts the execution. Outside one
      // (bypass) onError's answer stands, as without idemkit.
      if (ctx && c.error !== undefined && !isHttpException(c.error)) throw c.error;
      return c.res;
    }

    const response = await handleFetch(engine, await unreadRequest(c), runDownstream, c);
    if (!handlersRan) {
      // Replay or reject: nothing downstream ran. Earlier middleware's headers (c.header() before
      // next(), CORS) would have been on the handler's answer, so they go on this one too.
      const earlier = c.res.headers;
      c.res = undefined; // else Hono merges them in with theirs winning, over the replay marker
      c.res = withEarlierHeaders(response, earlier);
      return;
    }
    if (response === c.res) return; // bypassed: Hono's own answer, untouched
    // The engine's response (the handlers' answer marked as original, or a problem) replaces c.res
    // whole: assigning over it would merge the handler's headers into a 409 or a 500.
    c.res = undefined;
    c.res = response;
  };
}

/**
 * Adds what earlier middleware set to a response of the engine's. The engine's own fields win
 * (the replay marker, `cache-control: no-store`); cookies set by earlier middleware are this
 * caller's and are appended. `earlier` is empty unless something set headers before next().
 */
function withEarlierHeaders(response: Response, earlier: Headers): Response {
  for (const [name, value] of earlier) {
    if (name === 'set-cookie') response.headers.append(name, value);
    else if (!response.headers.has(name)) response.headers.set(name, value);
  }
  return response;
}

/**
 * The request whose body the flow reads. When middleware before this one already read the body
 * through c.req (a validator), Hono holds it in its body cache and the raw stream is spent; the
 * bytes come from the cache then (the text a JSON validator kept is the bytes as sent).
 */
async function unreadRequest(c: Context): Promise<Request> {
  const raw = c.req.raw;
  if (!raw.bodyUsed) return raw;
  return new Request(raw.url, { method: raw.method, headers: raw.headers, body: await c.req.arrayBuffer() });
}

/** Hono's own errorHandler answers with `getResponse()` when a thrown value has it: so do we. */
function isHttpException(error: Error): boolean {
  return typeof (error as { getResponse?: unknown }).getResponse === 'function';
}

/**
 * A webhook endpoint as a Hono handler: `app.all('/webhooks/stripe', webhookReceiver(options, fn))`
 * (`app.all` so other methods get 405 from it). It reads `c.req.raw` as bytes, or the body Hono
 * cached when a validator read it first; the signature is checked before anything is recorded,
 * then `fn` runs once per event id (see `receiveWebhook` in `idemkit/consumer` for the answers).
 * @example
 * app.all('/webhooks/stripe', webhookReceiver({ dedup, scheme: 'stripe', secret }, (event) => fulfil(JSON.parse(event.text))))
 */
export function webhookReceiver(options: WebhookReceiverOptions, handler: WebhookHandler): Handler {
  const receive = receiveWebhook(options, handler);
  return async function webhookHandler(c) {
    return receiveFetchWebhook(receive, await unreadRequest(c));
  };
}
