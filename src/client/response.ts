import type { RetryPolicy } from './policy.js';

/**
 * Why the client stopped with a retryable answer in hand (the answer is returned as it is):
 * - `retries-exhausted`: `retries` retries were made;
 * - `deadline-exceeded`: the next attempt would start after the operation's deadline;
 * - `budget-exhausted`: the client's retry budget is empty (a failing dependency);
 * - `retry-after-too-long`: the server asked for a wait beyond `maxRetryAfterMs`;
 * - `unsafe-operation`: a keyed operation would have been retried, an unsafe one is not.
 */
export type StopReason =
  | 'retries-exhausted'
  | 'deadline-exceeded'
  | 'budget-exhausted'
  | 'retry-after-too-long'
  | 'unsafe-operation';

/** What the client did for one logical operation, on every response it returns (`response.idemkit`). */
export interface OperationInfo {
  /** The key sent on every attempt; undefined for an idempotent or unsafe operation sent without one. */
  readonly key: string | undefined;
  /** Attempts made, the first one included. */
  readonly attempts: number;
  /** The server answered from its record (`Idempotent-Replayed: true`): an earlier attempt had run. */
  readonly replayed: boolean;
  readonly policy: RetryPolicy;
  /** Set when the answer was retryable but the client stopped. */
  readonly stopped: StopReason | undefined;
  /** The server's last `Retry-After`, in milliseconds. */
  readonly retryAfterMs: number | undefined;
  /** From the first attempt to this answer, backoff included. */
  readonly elapsedMs: number;
  /** The attempt that got this answer, alone: the server's latency as this client saw it. */
  readonly attemptMs: number;
}

/** A `Response` (the body already read, so it can be read again by the caller) plus what the client did. */
export type ClientResponse = Response & { readonly idemkit: OperationInfo };

/** Rebuilds a fully read response, so a body cut mid-way counts as a failed attempt, not the caller's problem. */
export function bufferedResponse(original: Response, bytes: Uint8Array<ArrayBuffer>): Response {
  const nullBody = original.status === 204 || original.status === 205 || original.status === 304;
  const copy = new Response(nullBody ? null : bytes, {
    status: original.status,
    statusText: original.statusText,
    headers: original.headers,
  });
  Object.defineProperty(copy, 'url', { value: original.url, enumerable: true });
  Object.defineProperty(copy, 'redirected', { value: original.redirected, enumerable: true });
  return copy;
}

export function withInfo(response: Response, info: OperationInfo): ClientResponse {
  Object.defineProperty(response, 'idemkit', { value: Object.freeze(info), enumerable: true });
  return response as ClientResponse;
}
