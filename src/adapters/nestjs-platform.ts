import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { HandlerContext } from '../core/decision.js';
import type { EngineResponse } from '../core/response.js';
import type { BodyHolder } from './nestjs-body.js';
import { sendEngineResponse } from './node-http.js';

/*
 * The two platforms as the interceptor sees them. On both, the Node objects are underneath:
 * Express's `req`/`res` are the IncomingMessage/ServerResponse, Fastify's request and reply carry
 * them as `.raw`. Nest itself finds them the same way (`res.raw ?? res`).
 */

/** Express's `req` or Fastify's `request`, as far as the interceptor uses it. */
export interface NestRequest extends BodyHolder {
  raw?: IncomingMessage;
  /** The target as the client sent it (Express: also under a global prefix or a mounted router). */
  originalUrl?: string;
  idempotency?: HandlerContext;
}

/** Express's `res` or Fastify's `reply`. */
export interface NestResponse {
  raw?: ServerResponse;
  /** Fastify's reply only: headers set so far (hooks, `@Header()`), written at `writeHead`. */
  getHeaders?: () => OutgoingHttpHeaders;
  send?: unknown;
}

export function rawRequestOf(request: NestRequest): IncomingMessage {
  return request.raw ?? (request as unknown as IncomingMessage);
}

export function rawResponseOf(response: NestResponse): ServerResponse {
  return response.raw ?? (response as unknown as ServerResponse);
}

/** Headers that describe one connection's framing: the engine's answer sets its own. */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);

/**
 * Answers `response` (a replay or a problem) in Nest's place, before the handler would run. What
 * was set for this request so far stays unless the answer names it (CORS, security headers,
 * `@Header()`), on Fastify too, where the reply holds them until it writes. Then everything Nest
 * writes for this request goes nowhere: it still replies (with the interceptor's `undefined`, or
 * an exception filter's body), and a handler with `@Res()` never does, so sending now is the
 * only moment that suits both.
 */
export function answerInPlace(
  framework: NestResponse,
  res: ServerResponse,
  response: EngineResponse,
  closeConnection = false,
): void {
  if (!res.headersSent && !res.destroyed) {
    if (framework !== (res as unknown) && typeof framework.getHeaders === 'function') {
      const pending = framework.getHeaders();
      for (const name in pending) {
        const value = pending[name];
        if (value !== undefined && !FRAMING.has(name.toLowerCase())) res.setHeader(name, value);
      }
    }
    sendEngineResponse(res, response, closeConnection);
  }
  silence(framework, res);
}

/**
 * After idemkit answered in the framework's place, what the framework writes next is dropped:
 * an exception filter or `res.send()` would otherwise throw ERR_HTTP_HEADERS_SENT, and Fastify's
 * `reply.send()` would log "Reply was already sent" for every replay.
 */
export function silence(framework: NestResponse, res: ServerResponse): void {
  const own = res as unknown as Record<string, unknown>;
  own.writeHead = returnThis;
  own.setHeader = returnThis;
  own.appendHeader = returnThis;
  own.removeHeader = nothing;
  own.flushHeaders = nothing;
  own.write = swallowWrite;
  own.end = swallowEnd;
  if (framework !== (res as unknown) && typeof framework.send === 'function') framework.send = returnThis;
}

function returnThis<T>(this: T): T {
  return this;
}

function nothing(): void {}

type Callback = (error?: Error | null) => void;

function swallowWrite(_chunk?: unknown, encoding?: unknown, callback?: unknown): boolean {
  const done = typeof encoding === 'function' ? encoding : callback;
  if (typeof done === 'function') process.nextTick(done as Callback);
  return true;
}

function swallowEnd<T>(this: T, chunk?: unknown, encoding?: unknown, callback?: unknown): T {
  const done = typeof chunk === 'function' ? chunk : typeof encoding === 'function' ? encoding : callback;
  if (typeof done === 'function') process.nextTick(done as Callback);
  return this;
}
