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
  return new Promise((resolve) => new KeptBodyRead(req, maxBytes, resolve));
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
  private readonly resolve: (body: Uint8Array | undefined | null) => void;
  private readonly chunks: Buffer[] = [];
  private total = 0;
  private readonly onReadable = () => this.drain();
  private readonly onGone = () => this.finish(null);

  constructor(
    req: IncomingMessage,
    maxBytes: number,
    resolve: (body: Uint8Array | undefined | null) => void,
  ) {
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
