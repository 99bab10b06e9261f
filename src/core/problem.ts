import { PROBLEMS, type ProblemCode } from './errors.js';
import type { EngineResponse } from './response.js';

const TYPE_PREFIX = 'urn:idemkit:problem:';

/**
 * Renders an RFC 9457 problem response: a stable `type` per code, `title`, `status`, `detail`.
 * The detail is written by idemkit, never copied from a cause, so no stack trace, SQL or
 * hostname reaches a client (S12).
 */
export function problemResponse(
  code: ProblemCode,
  detail?: string,
  /** `retryAfter: false` drops the code's Retry-After where a retry would not help. */
  options: { retryAfter?: boolean } = {},
): EngineResponse {
  const info = PROBLEMS[code];
  const body = {
    type: `${TYPE_PREFIX}${code}`,
    title: info.title,
    status: info.status,
    detail: detail ?? info.title,
  };
  const headers: [string, string][] = [
    ['content-type', 'application/problem+json'],
    ['cache-control', 'no-store'],
  ];
  if (info.retryAfterSeconds !== undefined && options.retryAfter !== false)
    headers.push(['retry-after', String(info.retryAfterSeconds)]);
  return { status: info.status, headers, body: Buffer.from(JSON.stringify(body), 'utf8') };
}

/** The problem `type` URI of a code, for clients and tests that match on it. */
export function problemType(code: ProblemCode): string {
  return `${TYPE_PREFIX}${code}`;
}
