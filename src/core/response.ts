import { createHash } from 'node:crypto';
import type { StoredResponse } from './store.js';

/** A response as the engine sees it, whatever the framework: status, header lines, body bytes. */
export interface EngineResponse {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
  /**
   * The caller streams the body itself because it is larger than `maxStoredBytes` (the gateway
   * never buffers past its budget): `body` is empty, the record keeps status and headers only,
   * and replays answer 409 `result-unavailable`.
   */
  bodyOmitted?: boolean;
}

/**
 * Headers a replay may carry. They describe the representation or
 * the created resource, the same for every caller. Everything else, above all `set-cookie` and
 * authentication headers, belongs to the moment and the caller and is neither stored nor
 * replayed (S3).
 */
export const DEFAULT_REPLAY_HEADERS: readonly string[] = Object.freeze([
  'content-type',
  'content-language',
  'content-encoding',
  'vary',
  'location',
  'content-location',
  'etag',
  'last-modified',
  'link',
]);

/** Never stored, even when configured: credentials and per-connection framing. */
const NEVER_STORED = new Set([
  'set-cookie',
  'set-cookie2',
  'authorization',
  'proxy-authorization',
  'www-authenticate',
  'proxy-authenticate',
  'cookie',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'date',
  'idempotent-replayed',
]);

export function replayAllowlist(extra: readonly string[]): ReadonlySet<string> {
  const names = [...DEFAULT_REPLAY_HEADERS, ...extra.map((n) => n.toLowerCase())];
  return new Set(names.filter((n) => !NEVER_STORED.has(n)));
}

export const REPLAYED_HEADER = 'idempotent-replayed';

/** Builds what the store keeps: allowlisted headers, and the body unless it is too large (F4). */
export function toStoredResponse(
  response: EngineResponse,
  allowlist: ReadonlySet<string>,
  maxStoredBytes: number,
): StoredResponse {
  const lines = response.headers;
  let count = 0;
  for (let i = 0; i < lines.length; i++)
    if (allowlist.has((lines[i] as [string, string])[0].toLowerCase())) count++;
  const headers = sizedList<[string, string]>(count);
  for (let i = 0, at = 0; at < count; i++) {
    const [name, value] = lines[i] as [string, string];
    const lower = name.toLowerCase();
    if (allowlist.has(lower)) headers[at++] = [lower, value];
  }
  // Streamed past the budget: never held whole, so there is no hash of it either.
  if (response.bodyOmitted)
    return { status: response.status, headers, body: new Uint8Array(0), bodyOmitted: true };
  if (response.body.byteLength <= maxStoredBytes) {
    return { status: response.status, headers, body: response.body };
  }
  return {
    status: response.status,
    headers,
    body: new Uint8Array(0),
    bodyOmitted: true,
    bodySha256: createHash('sha256').update(response.body).digest('hex'),
  };
}

/** The first answer: the handler's response as it was, marked as not replayed. */
export function markOriginal(response: EngineResponse): EngineResponse {
  const headers = withoutHeader(response.headers, REPLAYED_HEADER, 1);
  headers[headers.length - 1] = [REPLAYED_HEADER, 'false'];
  return { ...response, headers };
}

/** A replay: stored status, identical body bytes, stored headers, marker and `no-store`. */
export function toReplay(stored: StoredResponse): EngineResponse {
  const headers = withoutHeader(stored.headers, 'cache-control', 2);
  headers[headers.length - 2] = [REPLAYED_HEADER, 'true'];
  headers[headers.length - 1] = ['cache-control', 'no-store'];
  return { status: stored.status, headers, body: stored.body };
}

/**
 * A new list of the lines not named `lower` (any case), the lines themselves shared, with
 * `room` empty places at its end for the caller's own lines. Both callers run for every
 * executed request or replay.
 */
function withoutHeader(lines: readonly [string, string][], lower: string, room: number): [string, string][] {
  let kept = 0;
  for (let i = 0; i < lines.length; i++)
    if ((lines[i] as [string, string])[0].toLowerCase() !== lower) kept++;
  const list = sizedList<[string, string]>(kept + room);
  for (let i = 0, at = 0; at < kept; i++) {
    const line = lines[i] as [string, string];
    if (line[0].toLowerCase() !== lower) list[at++] = line;
  }
  return list;
}

/**
 * An array of exactly `length` places for the caller to fill. `[]` and `push` would give a
 * short header list a backing store of 16 or more places on its first push: garbage on every
 * request.
 */
function sizedList<T>(length: number): T[] {
  return new Array<T>(length);
}

/** Statuses whose responses must not carry a body (RFC 9110). */
export function isNullBodyStatus(status: number): boolean {
  return status === 101 || status === 103 || status === 204 || status === 205 || status === 304;
}
