import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Pool } from 'undici';
import type { EngineResponse } from '../core/response.js';
import { createTrustedProxies, setForwardingHeaders } from './forwarded.js';
import { RequestProgress, trackRequestStart, UpstreamError } from './upstream-outcome.js';

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
  const dispatcher = pool.compose(trackRequestStart);

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
    async forward(req, target, body, key, budget) {
      const progress = new RequestProgress();
      try {
        const response = await dispatcher.request({
          path: basePath + target,
          method: req.method as 'POST',
          headers: requestHeaders(req, key),
          body: body.byteLength > 0 ? Buffer.from(body.buffer, body.byteOffset, body.byteLength) : null,
          opaque: progress,
        });
        const head = { status: response.statusCode, headers: responseHeaderList(response.headers) };
        const read = await readWithinBudget(response.body, budget);
        if (read.bytes) return { response: { ...head, body: read.bytes } };
        const length = response.headers['content-length'];
        return {
          response: { ...head, body: new Uint8Array(0), bodyOmitted: true },
          stream: read.stream,
          ...(typeof length === 'string' && /^\d+$/.test(length) ? { contentLength: length } : {}),
        };
      } catch (error) {
        // Read `sent` only now: an error raised while undici builds the request (a header it
        // refuses) comes before it, and so does every connect failure.
        throw new UpstreamError(error, progress.sent);
      }
    },

    async streamThrough(req, res, target) {
      const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
      const response = await pool.request({
        path: basePath + target,
        method: (req.method ?? 'GET') as 'GET',
        headers: requestHeaders(req, null),
        body: hasBody ? req : null,
      });
      res.writeHead(response.statusCode, groupHeaders(responseHeaderList(response.headers)));
      await pipeline(response.body, res);
    },

    close: () => pool.close(),
  };
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

/** `[name, value][]` → the record node's writeHead wants, repeated names as arrays. */
export function groupHeaders(list: readonly [string, string][]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of list) {
    const prior = out[name];
    out[name] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
  }
  return out;
}

/**
 * Reads a body until it ends or passes `budget` bytes. Past the budget nothing more is pulled
 * until someone reads `stream`: the chunks read so far, then the rest (undici pauses the socket
 * meanwhile). Destroying `stream` early abandons the upstream answer and closes its connection.
 */
async function readWithinBudget(
  body: Readable,
  budget: number,
): Promise<{ bytes: Uint8Array; stream?: undefined } | { bytes?: undefined; stream: Readable }> {
  const iterator: AsyncIterator<Buffer> = body[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const next = await iterator.next();
    if (next.done) return { bytes: Buffer.concat(chunks, total) };
    chunks.push(next.value);
    total += next.value.length;
    if (total > budget) {
      const stream = Readable.from(readOn(chunks, iterator), { objectMode: false });
      // Destroyed before the end (client gone, commit refused): drop the upstream answer too.
      stream.once('close', () => body.readableEnded || body.destroy());
      return { stream };
    }
  }
}

async function* readOn(head: Buffer[], iterator: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  yield* head.splice(0);
  for (;;) {
    const next = await iterator.next();
    if (next.done) return;
    yield next.value;
  }
}
