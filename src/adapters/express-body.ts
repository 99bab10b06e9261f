import type { IncomingMessage } from 'node:http';
import { canonicalJson } from '../core/canonical-json.js';
import { readAndPutBack } from './put-back-body.js';

/*
 * Where the Express adapter gets the request body's bytes, in this order:
 * 1. bytes kept on the request: by `keepRawBody` in a body parser's `verify` hook, or by an
 *    earlier read of this adapter;
 * 2. the stream, when nothing consumed it: read within the limit, then put back (`unshift`) so
 *    body parsers and handlers after the middleware read it as if nobody had;
 * 3. a parser consumed the stream without the hook: `req.body` — a Buffer or string as it is, an
 *    object as canonical JSON (numbers beyond 2^53 have already lost precision there).
 */

/** Where the raw bytes are kept on the request. */
const RAW_BODY = Symbol.for('idemkit.rawBody');

interface BodyHolder extends IncomingMessage {
  [RAW_BODY]?: Uint8Array;
  /** Set by body-parser 1.x (Express 4's express.json()) once it has read the stream. */
  _body?: boolean;
  body?: unknown;
}

const EMPTY = new Uint8Array(0);

/**
 * A body parser's `verify` hook that keeps the bytes it read, for when the parser runs before
 * the idempotency middleware: `app.use(express.json({ verify: keepRawBody }))`. Works with
 * `express.json()`, `express.raw()`, `express.text()` and `express.urlencoded()` (Express 4
 * and 5), and with any parser that calls `verify(req, res, buffer)`.
 */
export function keepRawBody(req: IncomingMessage, _res: unknown, buffer: Uint8Array): void {
  (req as BodyHolder)[RAW_BODY] = buffer;
}

/**
 * The bodies the middleware read itself. A WeakMap, not a property on the request: Express gives
 * each request a hidden class of its own, which every property added to it copies.
 */
const READ_BODIES = new WeakMap<IncomingMessage, Uint8Array>();

/** The raw bytes `keepRawBody` or the middleware kept on this request, if any. */
export function rawBodyOf(req: IncomingMessage): Uint8Array | undefined {
  return (req as BodyHolder)[RAW_BODY] ?? READ_BODIES.get(req);
}

/**
 * The body's bytes: `undefined` past `maxBytes`, `null` when the client went away before the body
 * ended (nobody is left to answer).
 */
export function requestBody(req: IncomingMessage, maxBytes: number): Promise<Uint8Array | undefined | null> {
  const holder = req as BodyHolder;
  const kept = rawBodyOf(req);
  if (kept !== undefined) return Promise.resolve(kept);
  if (holder._body === true || req.readableEnded || req.readableDidRead) {
    return Promise.resolve(bytesOfParsed(holder.body));
  }
  const declared = req.headers['content-length'];
  // A body known to be empty is not touched: reading it would end the stream, and a parser after
  // the middleware would then see a finished request and leave req.body unset.
  if (declared === '0') return Promise.resolve(EMPTY);
  if (Number(declared ?? 0) > maxBytes) return Promise.resolve(undefined);
  return readAndPutBack(req, maxBytes).then((body) => {
    if (body) READ_BODIES.set(req, body);
    return body;
  });
}

/** The last resort: what a parser left in `req.body`, as bytes. */
function bytesOfParsed(body: unknown): Uint8Array {
  if (body instanceof Uint8Array) return body;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body === undefined || body === null) return EMPTY;
  // An empty object is also what body-parser leaves when it skipped a request without a body.
  if (typeof body === 'object' && Object.keys(body).length === 0) return EMPTY;
  const text = JSON.stringify(body);
  return Buffer.from(canonicalJson(text) ?? text, 'utf8');
}
