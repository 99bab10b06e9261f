import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { errors, Pool } from 'undici';
import { IdempotencyError } from '../core/errors.js';
import type { EngineResponse } from '../core/response.js';
import { createTrustedProxies, setForwardingHeaders } from './forwarded.js';

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

export interface Upstream {
  /**
   * Forwards a covered request whose body is already read; buffers the response. `target` is the
   * normalised path and query (path.ts) the scope was built on: the upstream gets exactly that.
   */
  forward(
    req: IncomingMessage,
    target: string,
    body: Uint8Array,
    key: string | undefined,
  ): Promise<EngineResponse>;
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
    async forward(req, target, body, key) {
      try {
        const response = await pool.request({
          path: basePath + target,
          method: req.method as 'POST',
          headers: requestHeaders(req, key),
          body: body.byteLength > 0 ? Buffer.from(body.buffer, body.byteOffset, body.byteLength) : null,
        });
        const bytes = new Uint8Array(await response.body.arrayBuffer());
        return { status: response.statusCode, headers: responseHeaderList(response.headers), body: bytes };
      } catch (error) {
        throw upstreamError(error);
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

function filterHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const named = connectionNamed(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
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

function upstreamError(error: unknown): IdempotencyError {
  const timedOut =
    error instanceof errors.HeadersTimeoutError ||
    error instanceof errors.BodyTimeoutError ||
    error instanceof errors.ConnectTimeoutError;
  return timedOut
    ? new IdempotencyError('upstream-timeout', 'the upstream did not answer in time', { cause: error })
    : new IdempotencyError('upstream-unavailable', 'the upstream failed', { cause: error });
}
