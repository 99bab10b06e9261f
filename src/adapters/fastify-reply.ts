import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { type EngineResponse, isNullBodyStatus } from '../core/response.js';
import { closeAfterAnswer } from './lingering-close.js';

/*
 * Translation between a Fastify reply and the engine's response: what a handler's reply amounts
 * to when it reaches `onSend` (status, every header line, the body bytes), and how an engine
 * response is put on a reply. Fastify is used through its reply API only (types, no import).
 */

/** Framing of one connection: Fastify sets it for what it finally sends. */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);

/** What `onSend` saw: the response to commit, and the rest of a body that was too large to hold. */
export interface CapturedReply {
  response: EngineResponse;
  /** The same body as Fastify can send it: the payload itself, or the bytes read from a stream. */
  payload: unknown;
  /** Set when the body passed `maxStoredBytes`: the held part and the rest, to stream after commit. */
  rest?: Readable;
}

/**
 * Reads the payload `onSend` received (Fastify has serialised objects by then) into an engine
 * response. A stream is held up to `maxStoredBytes`; past that the response is committed without
 * its body (replays answer `result-unavailable`) and the rest streams through afterwards, so a
 * large download is never buffered whole. A stream that fails while it is read rejects: the
 * caller aborts the execution.
 */
export async function captureReply(
  reply: FastifyReply,
  payload: unknown,
  maxStoredBytes: number,
): Promise<CapturedReply> {
  let source = payload;
  if (isFetchResponse(source)) {
    // Fastify applies a Response's status and headers after the onSend hooks; do it now.
    reply.code(source.status);
    for (const [name, value] of source.headers) if (name !== 'set-cookie') reply.header(name, value);
    const cookies = source.headers.getSetCookie();
    if (cookies.length > 0) reply.header('set-cookie', cookies);
    source = source.body;
  }
  const response: EngineResponse = { status: reply.statusCode, headers: [], body: EMPTY };
  if (typeof source === 'string') response.body = Buffer.from(source, 'utf8');
  else if (source instanceof Uint8Array) response.body = source;
  else if (isNodeStream(source) || isWebStream(source)) {
    const stream = isNodeStream(source) ? source : Readable.fromWeb(source as never);
    const read = await readWithin(stream, maxStoredBytes);
    response.headers = headerLinesOf(reply);
    if (read.rest) {
      response.bodyOmitted = true;
      // An empty body of its own: `answer()` tells the handler's answer from a problem by it.
      response.body = new Uint8Array(0);
      return { response, payload: read.rest, rest: read.rest };
    }
    response.body = read.body;
    return { response, payload: read.body };
  }
  response.headers = headerLinesOf(reply);
  return { response, payload: source };
}

/**
 * Puts the engine's answer to a captured reply on the reply and returns the payload to send.
 * Usually the engine answers the handler's own response — the same body, the handler's header
 * lines plus `Idempotent-Replayed: false` — and then only the lines it added are set (one header
 * instead of rebuilding the reply). Anything else (a lost lease, a failed commit) replaces the
 * reply whole.
 */
export function answer(reply: FastifyReply, captured: CapturedReply, response: EngineResponse): unknown {
  const own = captured.response;
  if (response.body !== own.body || response.status !== own.status) return toReplyPayload(reply, response);
  for (const line of response.headers) if (!own.headers.includes(line)) reply.header(line[0], line[1]);
  return captured.payload;
}

/** Every header line set on the reply (and on `reply.raw`); arrays become one line each. */
export function headerLinesOf(reply: FastifyReply): [string, string][] {
  const lines: [string, string][] = [];
  const headers = reply.getHeaders();
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || FRAMING.has(name)) continue;
    if (Array.isArray(value)) for (const line of value) lines.push([name, String(line)]);
    else lines.push([name, String(value)]);
  }
  return lines;
}

/**
 * Makes the reply say exactly `response`: every header set so far is dropped (a problem replaces
 * what the handler began), then status and header lines are set. Returns the payload to send:
 * the body bytes, or `null` for statuses that carry none.
 */
export function toReplyPayload(reply: FastifyReply, response: EngineResponse): Buffer | null {
  for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
  for (const name of reply.raw.getHeaderNames()) reply.raw.removeHeader(name);
  setStatusAndHeaders(reply, response);
  if (isNullBodyStatus(response.status)) return null;
  const body = response.body;
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

/** Sends an engine response (a replay or a problem) before the handler runs. */
export function sendEngineResponse(
  reply: FastifyReply,
  response: EngineResponse,
  closeConnection = false,
): FastifyReply {
  const payload = toReplyPayload(reply, response);
  if (closeConnection) {
    reply.header('connection', 'close');
    closeAfterAnswer(reply.raw);
  }
  return payload === null || payload.byteLength === 0 ? reply.send() : reply.send(payload);
}

/** Status and header lines; repeated names (set-cookie, link, vary) go out as repeated lines. */
export function setStatusAndHeaders(reply: FastifyReply, response: EngineResponse): void {
  reply.code(response.status);
  const grouped: Record<string, string | string[]> = {};
  for (const [name, value] of response.headers) {
    const held = grouped[name];
    if (held === undefined) grouped[name] = value;
    else if (typeof held === 'string') grouped[name] = [held, value];
    else held.push(value);
  }
  for (const name in grouped) reply.header(name, grouped[name]);
}

async function readWithin(
  stream: Readable,
  maxBytes: number,
): Promise<{ body: Uint8Array; rest?: Readable }> {
  const chunks: Buffer[] = [];
  let size = 0;
  const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<unknown>;
  for (;;) {
    const next = await iterator.next();
    if (next.done) return { body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size) };
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : (next.value as Buffer);
    chunks.push(chunk);
    size += chunk.byteLength;
    if (size > maxBytes) return { body: EMPTY, rest: Readable.from(heldThenRest(chunks, iterator)) };
  }
}

/** The chunks already read, then the rest of the source; closing it early closes the source. */
async function* heldThenRest(held: Buffer[], rest: AsyncIterator<unknown>): AsyncGenerator<unknown> {
  try {
    yield* held;
    held.length = 0;
    for (;;) {
      const next = await rest.next();
      if (next.done) return;
      yield next.value;
    }
  } finally {
    await rest.return?.();
  }
}

const EMPTY = new Uint8Array(0);

function isNodeStream(value: unknown): value is Readable {
  return typeof (value as { pipe?: unknown } | null)?.pipe === 'function';
}

function isWebStream(value: unknown): value is ReadableStream {
  return typeof (value as { getReader?: unknown } | null)?.getReader === 'function';
}

function isFetchResponse(value: unknown): value is Response {
  return (
    typeof value === 'object' &&
    value !== null &&
    Object.prototype.toString.call(value) === '[object Response]'
  );
}
