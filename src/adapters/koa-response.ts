import type { ParameterizedContext } from 'koa';
import { type EngineResponse, isNullBodyStatus } from '../core/response.js';
import { closeAfterAnswer } from './lingering-close.js';
import type { ResponseCapture } from './node-http-capture.js';

/*
 * Koa's side of the response: answering with an engine response the Koa way, telling Koa's own
 * HTTP errors from failures, and keeping a held response writable for Koa.
 */

type KoaContext = ParameterizedContext<unknown>;

/**
 * Answers with an engine response (a replay or a problem) through Koa: `ctx.status`, `ctx.set`,
 * `ctx.body`. Koa sends it once the middleware chain unwinds, so middleware in front of this one
 * decorates it as it would the handler's answer (CORS, response time). Headers the response names
 * replace what earlier middleware set; repeated names stay separate lines.
 */
export function answerWith(ctx: KoaContext, response: EngineResponse, closeConnection = false): void {
  ctx.status = response.status;
  let typed = false;
  const headers = response.headers;
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i] as [string, string];
    const lower = name.toLowerCase();
    if (lower === 'content-type') typed = true;
    if (namedBefore(headers, i, lower)) ctx.append(name, value);
    else ctx.set(name, value);
  }
  if (closeConnection) {
    ctx.set('connection', 'close');
    closeAfterAnswer(ctx.res);
  }
  if (isNullBodyStatus(response.status)) {
    ctx.body = null;
    return;
  }
  const body = response.body;
  ctx.body = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  // Koa labels a Buffer without a type application/octet-stream; a replay says what was stored.
  if (!typed) ctx.remove('content-type');
}

function namedBefore(headers: readonly (readonly [string, string])[], end: number, lower: string): boolean {
  for (let j = 0; j < end; j++)
    if ((headers[j] as readonly [string, string])[0].toLowerCase() === lower) return true;
  return false;
}

/**
 * Koa's own HTTP errors (`ctx.throw(422, …)`, `ctx.assert`, http-errors from body parsers) are
 * answers the app meant to give: Koa renders them (the message only when `expose`), and that
 * answer is captured like any response. The test is http-errors' own `isHttpError`, which Koa
 * uses, without loading it.
 */
export function isHttpError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const fields = error as Error & { expose?: unknown; status?: unknown; statusCode?: unknown };
  return (
    typeof fields.expose === 'boolean' &&
    typeof fields.statusCode === 'number' &&
    fields.status === fields.statusCode
  );
}

/**
 * Koa checks `ctx.writable` (the socket's state) before it writes the body or an error answer,
 * and writes nothing when the client has gone. While the capture holds the response those writes
 * go to the store, not the socket: a handler whose client left still has its result stored
 * (the retry gets the replay), and a thrown error still ends the execution. Once the answer is
 * decided, Koa's own getter answers again.
 */
export function keepWritableWhileHeld(ctx: KoaContext, capture: ResponseCapture): void {
  const response = ctx.response;
  const prototype = Object.getPrototypeOf(response) as object;
  Object.defineProperty(response, 'writable', {
    configurable: true,
    get(): boolean {
      return capture.holding || (Reflect.get(prototype, 'writable', response) as boolean);
    },
  });
}
