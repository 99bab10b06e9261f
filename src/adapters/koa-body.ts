import type { IncomingMessage } from 'node:http';
import { readAndPutBack } from './put-back-body.js';

/*
 * Where the Koa middleware gets the request body's bytes:
 * 1. a body parser in front left the raw text: `ctx.request.rawBody` (koa-bodyparser,
 *    @koa/bodyparser) or koa-body's `includeUnparsed` symbol;
 * 2. nothing read the stream: read it within the limit, then put the bytes back (`unshift`) so
 *    body parsers and handlers after the middleware read `ctx.req` as if nobody had.
 * A stream some parser consumed without leaving the raw text cannot be fingerprinted: that is a
 * setup error, refused loudly rather than guessed at.
 */

/** What body parsers leave on Koa's request; typed here as the subset read. */
export interface ParsedRequest {
  req: IncomingMessage;
  /** koa-bodyparser and @koa/bodyparser keep the text they parsed here. */
  rawBody?: unknown;
  body?: unknown;
}

/** koa-body with `includeUnparsed: true` keeps the raw text under this symbol on the parsed body. */
const UNPARSED = Symbol.for('unparsedBody');
const EMPTY = new Uint8Array(0);

export const CONSUMED_WITHOUT_RAW_BODY =
  'idemkit/koa: a body parser read the request before idempotency() and left no raw body to fingerprint; ' +
  'put idempotency() before the parser, or use one that keeps it (koa-bodyparser and @koa/bodyparser ' +
  'keep ctx.request.rawBody; koa-body needs includeUnparsed: true)';

/**
 * The body's bytes: `undefined` past `maxBytes`, `null` when the client went away before the
 * body ended (nobody is left to answer). Rejects when a parser consumed it without the raw text.
 */
export function requestBody(
  request: ParsedRequest,
  maxBytes: number,
): Promise<Uint8Array | undefined | null> {
  const raw = rawTextOf(request);
  if (raw !== undefined) {
    // The parser decoded the bytes as text (UTF-8 unless the request said otherwise): the
    // fingerprint sees them re-encoded, which is the same bytes for UTF-8 bodies.
    const bytes = Buffer.from(raw, 'utf8');
    return Promise.resolve(bytes.byteLength > maxBytes ? undefined : bytes);
  }
  const req = request.req;
  if (req.readableDidRead || req.readableEnded) return Promise.reject(new Error(CONSUMED_WITHOUT_RAW_BODY));
  const declared = req.headers['content-length'];
  // An HTTP/1 request without Content-Length or Transfer-Encoding has no body (RFC 9112 §6.3)
  // (HTTP/2 frames bodies itself); reading one known to be empty would end the stream under a
  // parser that comes later.
  if (
    declared === '0' ||
    (declared === undefined && req.headers['transfer-encoding'] === undefined && req.httpVersionMajor < 2)
  )
    return Promise.resolve(EMPTY);
  if (Number(declared ?? 0) > maxBytes) return Promise.resolve(undefined);
  return readAndPutBack(req, maxBytes);
}

function rawTextOf(request: ParsedRequest): string | undefined {
  if (typeof request.rawBody === 'string') return request.rawBody;
  const body = request.body;
  if (typeof body === 'object' && body !== null) {
    const unparsed = (body as Record<symbol, unknown>)[UNPARSED];
    if (typeof unparsed === 'string') return unparsed;
  }
  return undefined;
}
