import type { IncomingMessage } from 'node:http';

/**
 * Reads a request's whole body within `maxBytes` and puts it back: `undefined` past the limit,
 * `null` when the client went away before the body ended. Used where a framework's own body
 * parsers and the handler still read the request after idemkit has (Express, Koa).
 */
export function readAndPutBack(
  req: IncomingMessage,
  maxBytes: number,
): Promise<Uint8Array | undefined | null> {
  const whole = takeWholeBody(req, maxBytes);
  if (whole !== undefined) return Promise.resolve(whole);
  return new Promise((resolve) => setImmediate(readAfterParse, req, maxBytes, resolve));
}

type Resolve = (body: Uint8Array | undefined | null) => void;

/**
 * A small body usually arrives in the same read as the headers, but Node's parser runs the
 * request handler (and the microtasks after it) between the two: only on the next turn of the
 * event loop is it all buffered. Then it is taken and put back at once, with no listener added to
 * the request and no read state kept (every `on`/`removeListener` on an Express request misses
 * V8's caches, its hidden class being its own); a body still on its way is read as it comes.
 */
function readAfterParse(req: IncomingMessage, maxBytes: number, resolve: Resolve): void {
  const whole = takeWholeBody(req, maxBytes);
  if (whole !== undefined) resolve(whole);
  else new KeptBodyRead(req, maxBytes, resolve);
}

const NO_BODY = Buffer.alloc(0);

/**
 * The body when it has all arrived and fits the limit (taken and put back), `null` when the
 * client is gone, `undefined` when it must be read as it comes (or refused, by that read).
 */
function takeWholeBody(req: IncomingMessage, maxBytes: number): Buffer | null | undefined {
  // Gone before the body was read: its 'close' has been emitted already, so nothing would end a read.
  if (req.destroyed) return null;
  const length = req.readableLength;
  if (!req.complete || length > maxBytes || req.readableEncoding !== null) return undefined;
  if (length === 0) return NO_BODY;
  // Paused and not flowing, read() returns everything buffered as one Buffer.
  const body = req.read() as Buffer | null;
  if (body === null) return undefined;
  req.unshift(body);
  // A read of an ended stream never reaches IncomingMessage's _read, which is where Node notes that
  // the app consumes the body; unnoted, Node "dumps" the request when the response finishes
  // (drops its data listeners and resumes it), work for nothing: the body is all in memory and
  // the parsers after the middleware read it. Noted here as _read would have (an own field of
  // every IncomingMessage, so setting it changes no hidden class).
  (req as { _consuming?: boolean })._consuming = true;
  return body;
}

/**
 * Reads the stream in paused mode and, once the last byte is in, puts the whole body back at the
 * front of the stream before `end` is emitted: Node allows an `unshift` until then (its end check
 * runs a tick later and sees the buffer filled again). Code after it reads the request like an
 * untouched request: `data` events, `pipe`, `for await`, body parsers. The read's state and its
 * listeners are this object's own: nothing is added to the request (Express gives each request a
 * hidden class of its own, which every added property copies).
 */
class KeptBodyRead {
  private readonly req: IncomingMessage;
  private readonly maxBytes: number;
  private readonly resolve: Resolve;
  private readonly chunks: Buffer[] = [];
  private total = 0;
  private readonly onReadable = () => this.drain();
  private readonly onGone = () => this.finish(null);

  constructor(req: IncomingMessage, maxBytes: number, resolve: Resolve) {
    this.req = req;
    this.maxBytes = maxBytes;
    this.resolve = resolve;
    req.on('readable', this.onReadable);
    req.once('close', this.onGone);
    req.once('error', this.onGone);
  }

  private drain(): void {
    const req = this.req;
    for (let chunk = req.read() as Buffer | null; chunk !== null; chunk = req.read() as Buffer | null) {
      this.total += chunk.length;
      // Past the limit: stop reading (back-pressure pauses the socket) and refuse.
      if (this.total > this.maxBytes) {
        this.finish(undefined);
        return;
      }
      this.chunks.push(chunk);
    }
    // `complete` is set before the parser pushes the end: with the buffer drained, that was all.
    if (!req.complete) return;
    const body =
      this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.total);
    if (body.length > 0) req.unshift(body);
    this.finish(body);
  }

  private finish(body: Uint8Array | undefined | null): void {
    const req = this.req;
    req.removeListener('readable', this.onReadable);
    req.removeListener('close', this.onGone);
    req.removeListener('error', this.onGone);
    this.resolve(body);
  }
}
