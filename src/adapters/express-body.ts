import type { IncomingMessage } from 'node:http';
import { canonicalJson } from '../core/canonical-json.js';

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
  return new Promise((resolve) => new BodyRead(holder, maxBytes, resolve));
}

/**
 * Reads the stream in paused mode and, once the last byte is in, puts the whole body back at the
 * front of the stream before `end` is emitted: Node allows an `unshift` until then, and a stream
 * with data in its buffer does not end. Parsers and handlers later read it like an untouched
 * request (`data` events, `pipe`, `for await`), on Express 4 and 5 alike.
 *
 * The read's state is this object and its listeners are its own arrow functions: nothing is
 * added to the request itself (see READ_BODIES).
 */
class BodyRead {
  private readonly req: IncomingMessage;
  private readonly maxBytes: number;
  private readonly resolve: (body: Uint8Array | undefined | null) => void;
  private readonly chunks: Buffer[] = [];
  private total = 0;

  constructor(
    req: IncomingMessage,
    maxBytes: number,
    resolve: (body: Uint8Array | undefined | null) => void,
  ) {
    this.req = req;
    this.maxBytes = maxBytes;
    this.resolve = resolve;
    req.on('readable', this.onReadable);
    // An aborted request is destroyed, and a destroyed stream always emits `close` (its `error`
    // only reaches listeners that exist: none needed here).
    req.once('close', this.onGone);
  }

  private readonly onReadable = (): void => {
    const req = this.req;
    let chunk: Buffer | null;
    // biome-ignore lint/suspicious/noAssignInExpressions: the stream's own read loop idiom
    while ((chunk = req.read() as Buffer | null) !== null) {
      this.total += chunk.length;
      // Past the limit: stop reading (back-pressure then pauses the socket) and refuse.
      if (this.total > this.maxBytes) {
        this.finish(undefined);
        return;
      }
      this.chunks.push(chunk);
    }
    // `complete` is set just before the HTTP parser pushes the end: with the buffer drained, that was all.
    if (!req.complete) return;
    const body =
      this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.total);
    if (body.length > 0) req.unshift(body);
    READ_BODIES.set(req, body);
    this.finish(body);
  };

  private readonly onGone = (): void => {
    this.finish(null);
  };

  private finish(body: Uint8Array | undefined | null): void {
    this.req.removeListener('readable', this.onReadable);
    this.req.removeListener('close', this.onGone);
    this.resolve(body);
  }
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
