import type { IncomingMessage } from 'node:http';
import { IdempotencyConfigError } from '../core/errors.js';

/*
 * The bytes the client sent, for the fingerprint. Nest's body parsers run before any interceptor,
 * so the interceptor cannot read the stream first the way middleware can. What it uses, in order:
 * 1. `rawBody`: the bytes Nest keeps with `NestFactory.create(AppModule, { rawBody: true })` on
 *    both platforms (a parser added with `app.useBodyParser()` keeps them too);
 * 2. a string body (Fastify's text/plain parser): its UTF-8 bytes;
 * 3. a stream no parser touched (a content type Nest does not parse on Express): read here within
 *    the limit, kept as `rawBody`, and put back so `pipe(req)` and upload interceptors still work;
 * 4. a body parsed without its bytes: refused with an error naming the fix. A parsed object is not
 *    what the client sent (key order, integers beyond 2^53), and guessing would let two different
 *    amounts share one fingerprint.
 */

/** The framework request as far as the body goes: Express's `req` or Fastify's `request`. */
export interface BodyHolder {
  rawBody?: unknown;
  body?: unknown;
}

const EMPTY = new Uint8Array(0);

/** The body's bytes, or `undefined` once they pass `maxBytes`. */
export function requestBytes(
  holder: BodyHolder,
  raw: IncomingMessage,
  maxBytes: number,
): Uint8Array | undefined | Promise<Uint8Array | undefined> {
  const kept = holder.rawBody;
  if (kept instanceof Uint8Array) return kept;
  if (typeof holder.body === 'string') return Buffer.from(holder.body, 'utf8');
  if (!raw.readableDidRead && !raw.readableEnded) return readAndKeep(holder, raw, maxBytes);
  if (holder.body === undefined || holder.body === null) return EMPTY;
  throw new IdempotencyConfigError(
    'idemkit/nestjs fingerprints the bytes the client sent, but this request body was parsed without them: create the app with NestFactory.create(AppModule, { rawBody: true }) (a parser added with app.useBodyParser() then keeps them too)',
  );
}

/**
 * Reads a body no parser touched, within `maxBytes` (`undefined` past it), keeps it on `holder`
 * as `rawBody`, and puts it back on the stream for whoever reads next.
 */
export function readAndKeep(
  holder: BodyHolder,
  raw: IncomingMessage,
  maxBytes: number,
): Uint8Array | undefined | Promise<Uint8Array | undefined> {
  const declared = raw.headers['content-length'];
  // A body known to be empty (or absent) is not touched: reading it would end the stream.
  if (declared === '0' || (declared === undefined && raw.headers['transfer-encoding'] === undefined)) {
    return EMPTY;
  }
  if (Number(declared ?? 0) > maxBytes) return undefined;
  return new Promise<Uint8Array | undefined>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    function onReadable(): void {
      let chunk: Buffer | null;
      // biome-ignore lint/suspicious/noAssignInExpressions: the stream's own read loop idiom
      while ((chunk = raw.read() as Buffer | null) !== null) {
        total += chunk.length;
        // Past the limit: stop reading (back-pressure pauses the socket) and refuse.
        if (total > maxBytes) {
          done(undefined);
          return;
        }
        chunks.push(chunk);
      }
      // `complete` is set before the end is pushed: with the buffer drained, that was all of it.
      if (!raw.complete) return;
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total);
      // Node takes an unshift until `end` is emitted, and a stream with buffered data does not end:
      // whoever reads next (a handler's pipe, multer) gets the body as if nobody had.
      if (body.length > 0) raw.unshift(body);
      holder.rawBody = body;
      done(body);
    }
    function onGone(): void {
      cleanup();
      reject(new Error('the client closed the connection before the body ended'));
    }
    function done(body: Uint8Array | undefined): void {
      cleanup();
      resolve(body);
    }
    function cleanup(): void {
      raw.removeListener('readable', onReadable);
      raw.removeListener('close', onGone);
      raw.removeListener('error', onGone);
    }
    raw.on('readable', onReadable);
    raw.once('close', onGone);
    raw.once('error', onGone);
  });
}
