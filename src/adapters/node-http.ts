import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EngineRequest } from '../core/request.js';
import { type EngineResponse, isNullBodyStatus } from '../core/response.js';
import { closeAfterAnswer } from './lingering-close.js';

/*
 * The node:http translation shared by the Express, Koa and NestJS adapters and the gateway:
 * read a body within the limit, split a request target, send an engine response. Capturing what
 * a handler writes to a ServerResponse is in node-http-capture.ts, the whole flow for a plain
 * node:http handler in node-http-flow.ts. No Web Request/Response
 * objects on these paths: they cost a copy of every header and body.
 */

/**
 * Reads the whole body, or resolves `undefined` once it passes `maxBytes` (a declared
 * Content-Length over the limit is refused before a byte is read, and reading stops at the limit:
 * never buffer past it). One chunk, the common small body, is used as it is.
 */
export function readNodeBody(req: IncomingMessage, maxBytes: number): Promise<Uint8Array | undefined> {
  if (Number(req.headers['content-length'] ?? 0) > maxBytes) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    function onData(chunk: Buffer): void {
      total += chunk.length;
      if (total > maxBytes) {
        req.removeListener('data', onData);
        req.pause();
        resolve(undefined);
      } else chunks.push(chunk);
    }
    req.on('data', onData);
    req.once('end', () =>
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total)),
    );
    req.once('error', reject);
    // A client that goes away mid-body ends the read; `aborted` comes before `close` on old streams.
    req.once('close', () => {
      if (!req.complete) reject(new Error('the client closed the connection before the body ended'));
    });
  });
}

/** Splits a request target (`/pay?x=1`) into the path and the raw query without `?`. */
export function splitTarget(target: string): { path: string; query: string } {
  const at = target.indexOf('?');
  return at < 0 ? { path: target, query: '' } : { path: target.slice(0, at), query: target.slice(at + 1) };
}

/** The engine's view of a Node request whose body has been read. */
export function engineRequestOf(
  req: IncomingMessage,
  body: Uint8Array,
  native: unknown = req,
  target: string = req.url ?? '/',
): EngineRequest {
  const { path, query } = splitTarget(target);
  return { method: req.method ?? 'GET', path, query, headers: req.headers, body, native };
}

/**
 * Sends an engine response with one `writeHead` (a flat header list: no header record per answer)
 * and one `end`. Headers that middleware in front set on `res` (CORS, security headers) stay
 * unless the response names them too. Where headers were ever set on `res`, Node's `writeHead`
 * merges its list by `setHeader` and keeps only the last of repeated names (two `Set-Cookie`
 * lines): a response that repeats a name is appended line by line instead.
 */
export function sendEngineResponse(
  res: ServerResponse,
  response: EngineResponse,
  closeConnection = false,
): void {
  const sized = !isNullBodyStatus(response.status);
  // A reason phrase set for another status (Koa sets one with every ctx.status) must not go out
  // with this one: `500 Created`. Node fills in the standard phrase for an empty one.
  if (response.status !== res.statusCode) res.statusMessage = '';
  if (!repeatsAName(response.headers)) {
    const headers = flatHeaders(response.headers);
    if (sized) headers.push('content-length', String(response.body.byteLength));
    if (closeConnection) headers.push('connection', 'close');
    res.writeHead(response.status, headers);
  } else {
    for (const [name] of response.headers) res.removeHeader(name);
    for (const [name, value] of response.headers) res.appendHeader(name, value);
    if (sized) res.setHeader('content-length', String(response.body.byteLength));
    else res.removeHeader('content-length');
    if (closeConnection) res.setHeader('connection', 'close');
    res.writeHead(response.status);
  }
  // Before end(): the close it sets up replaces the one end() schedules.
  if (closeConnection) closeAfterAnswer(res);
  res.end(response.body);
}

function repeatsAName(headers: readonly (readonly [string, string])[]): boolean {
  for (let i = 1; i < headers.length; i++) {
    const name = (headers[i] as readonly [string, string])[0].toLowerCase();
    for (let j = 0; j < i; j++)
      if ((headers[j] as readonly [string, string])[0].toLowerCase() === name) return true;
  }
  return false;
}

/** Drops every header set on `res` so far (a problem answer replaces what the handler began). */
export function clearHeaders(res: ServerResponse): void {
  for (const name of res.getHeaderNames()) res.removeHeader(name);
}

/**
 * `[name, value][]` → the flat `[name, value, name, value, …]` list node's `writeHead` takes as is:
 * repeated names stay separate field lines, and no record is built per answer.
 */
export function flatHeaders(list: readonly (readonly [string, string])[]): string[] {
  const out: string[] = new Array(list.length * 2);
  for (let i = 0; i < list.length; i++) {
    const [name, value] = list[i] as readonly [string, string];
    out[2 * i] = name;
    out[2 * i + 1] = value;
  }
  return out;
}
