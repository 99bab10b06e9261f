import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { type Dispatcher, Pool } from 'undici';
import { flatHeaders } from '../adapters/node-http.js';
import type { EngineResponse } from '../core/response.js';
import { createTrustedProxies, setForwardingHeaders } from './forwarded.js';
import { UpstreamError } from './upstream-outcome.js';

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection, so a proxy never forwards
 * them, nor any field the Connection header names. `host` is set by the upstream pool.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
  'host',
]);

/**
 * A covered request's answer. Up to the budget the body is read whole into `response.body`;
 * past it, `response.bodyOmitted` is set and `stream` carries every body byte (those already read,
 * then the rest, with backpressure), to send once the record is committed.
 */
export interface UpstreamAnswer {
  response: EngineResponse;
  stream?: Readable;
  /** The upstream's Content-Length, kept for a streamed answer (a buffered one is measured). */
  contentLength?: string;
}

export interface Upstream {
  /**
   * Forwards a covered request whose body is already read; buffers at most `budget` answer bytes.
   * `target` is the normalised path and query (path.ts) the scope was built on: the upstream gets
   * exactly that. Throws `UpstreamError`, which tells whether the request may have reached it.
   */
  forward(
    req: IncomingMessage,
    target: string,
    body: Uint8Array,
    key: string | undefined,
    budget: number,
  ): Promise<UpstreamAnswer>;
  /** Streams an uncovered request through untouched, in both directions, to `target` (as above). */
  streamThrough(req: IncomingMessage, res: ServerResponse, target: string): Promise<void>;
  close(): Promise<void>;
}

export function createUpstream(
  origin: string,
  timeoutMs: number,
  trustedProxies: readonly string[] = [],
): Upstream {
  const url = new URL(origin);
  const trusted = createTrustedProxies(trustedProxies);
  const basePath = url.pathname.replace(/\/$/, '');
  const pool = new Pool(url.origin, {
    connections: 256,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connectTimeout: Math.min(timeoutMs, 10_000),
  });

  function requestHeaders(
    req: IncomingMessage,
    key: string | null | undefined,
  ): Record<string, string | string[]> {
    const headers = filterHeaders(req.headers);
    setForwardingHeaders(req, headers, trusted);
    // null leaves the client's header alone (uncovered requests); undefined strips it.
    if (key !== null) delete headers['idempotency-key'];
    if (key) headers['idempotency-key'] = key;
    return headers;
  }

  return {
    forward(req, target, body, key, budget) {
      return new Promise<UpstreamAnswer>((resolve, reject) => {
        // Straight on the pool with a handler of our own: `request()` would add a body stream, an
        // async iterator over it and a header round trip through its legacy handler API per request.
        const reader = new AnswerReader(budget, resolve, reject);
        try {
          pool.dispatch(
            {
              path: basePath + target,
              method: req.method as 'POST',
              headers: requestHeaders(req, key),
              body: body.byteLength > 0 ? Buffer.from(body.buffer, body.byteOffset, body.byteLength) : null,
            },
            reader,
          );
        } catch (error) {
          reader.onResponseError(undefined, error as Error);
        }
      });
    },

    async streamThrough(req, res, target) {
      const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
      // `stream()` writes the answer into `res` and ends it: no pipeline(), whose AbortController
      // and AbortError per request cost about as much as the rest of the pass-through.
      await pool.stream(
        {
          path: basePath + target,
          method: (req.method ?? 'GET') as 'GET',
          headers: requestHeaders(req, null),
          body: hasBody ? req : null,
        },
        ({ statusCode, headers }) => {
          res.writeHead(statusCode, flatHeaders(responseHeaderList(headers)));
          return res;
        },
      );
    },

    close: () => pool.close(),
  };
}

/**
 * One covered request's answer, read off undici's dispatch callbacks. Up to `budget` bytes the
 * body is collected and the promise resolves once it has ended; past the budget the promise
 * resolves with a stream that carries the chunks read so far and then the rest, pausing the
 * upstream socket while nobody reads it (backpressure).
 */
class AnswerReader implements Dispatcher.DispatchHandler {
  /** undici started writing the request on a connected socket: from here on it may have acted. */
  private sent = false;
  private status = 0;
  private headers: [string, string][] = [];
  private contentLength: string | undefined;
  private chunks: Buffer[] = [];
  private total = 0;
  private stream: Readable | undefined;
  private ended = false;
  private readonly budget: number;
  private readonly resolve: (answer: UpstreamAnswer) => void;
  private readonly reject: (error: UpstreamError) => void;

  constructor(
    budget: number,
    resolve: (answer: UpstreamAnswer) => void,
    reject: (error: UpstreamError) => void,
  ) {
    this.budget = budget;
    this.resolve = resolve;
    this.reject = reject;
  }

  onRequestStart(): void {
    this.sent = true;
  }

  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders) {
    // 1xx interim answers are not passed on (as undici's request() does); the final one follows.
    if (status < 200) return;
    this.status = status;
    this.headers = responseHeaderList(headers);
    const length = headers['content-length'];
    if (typeof length === 'string' && /^\d+$/.test(length)) this.contentLength = length;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.stream) {
      if (!this.stream.push(chunk)) controller.pause();
      return;
    }
    this.chunks.push(chunk);
    this.total += chunk.length;
    if (this.total > this.budget) this.startStreaming(controller);
  }

  onResponseEnd(): void {
    this.ended = true;
    if (this.stream) {
      this.stream.push(null);
      return;
    }
    const { chunks, total } = this;
    // A copy, also of a single chunk: that is a view of the socket read, which holds the answer's
    // head too, and the store may keep the body for a day.
    const body = Buffer.concat(chunks, total);
    this.resolve({ response: { status: this.status, headers: this.headers, body } });
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    this.ended = true;
    // Mid-stream: the one reading the stream learns of it (the answer's head is already out).
    if (this.stream) this.stream.destroy(error);
    // Read `sent` only now: an error raised while undici builds the request (a header it
    // refuses) comes before it, and so does every connect failure.
    else this.reject(new UpstreamError(error, this.sent));
  }

  private startStreaming(controller: Dispatcher.DispatchController): void {
    const stream = new Readable({
      read: () => controller.resume(),
      destroy: (error, callback) => {
        // Destroyed before the end (client gone, commit refused): drop the upstream answer too.
        if (!this.ended) controller.abort(error ?? new Error('the streamed answer was abandoned'));
        callback(error);
      },
    });
    this.stream = stream;
    let more = true;
    for (const chunk of this.chunks.splice(0)) more = stream.push(chunk);
    if (!more) controller.pause();
    this.resolve({
      response: { status: this.status, headers: this.headers, body: new Uint8Array(0), bodyOmitted: true },
      stream,
      ...(this.contentLength === undefined ? {} : { contentLength: this.contentLength }),
    });
  }
}

/** Field names a Connection header lists (hop-by-hop too); none in the common case. */
function connectionNamed(value: string | string[] | undefined): ReadonlySet<string> {
  if (value === undefined) return NONE;
  return new Set(
    String(value)
      .split(',')
      .map((n) => n.trim().toLowerCase()),
  );
}
const NONE: ReadonlySet<string> = new Set();

/**
 * `Expect: 100-continue` is answered by node's server (it sends `100 Continue` before the body is
 * read), and undici refuses to send it; the upstream gets the whole body at once.
 */
const ANSWERED_HERE = 'expect';

function filterHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const named = connectionNamed(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name) || name === ANSWERED_HERE) continue;
    out[name] = value;
  }
  return out;
}

function responseHeaderList(headers: Record<string, string | string[] | undefined>): [string, string][] {
  const named = connectionNamed(headers.connection);
  const list: [string, string][] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name) || name === 'content-length') {
      continue;
    }
    for (const v of Array.isArray(value) ? value : [value]) list.push([name, v]);
  }
  return list;
}
