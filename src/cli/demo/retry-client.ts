import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';

/**
 * The demo's retrying client, the loop every integration writes by hand (until `idemkit/client`
 * exists): the same key and the same body on every attempt, a timeout per attempt, capped
 * exponential backoff with full jitter, and Retry-After honoured. It retries what may succeed
 * later (network errors, timeouts, 408, 409, 425, 429, 5xx), never a 400 or 422.
 */
export interface RetryClientOptions {
  /** Each attempt's deadline, body included. @default 1_000 */
  timeoutMs?: number;
  /** @default 10 */
  maxAttempts?: number;
  /** Backoff before retry n is random in [0, min(maxDelayMs, baseDelayMs · 2^(n-1))]. @default 50 */
  baseDelayMs?: number;
  /** @default 1_000 */
  maxDelayMs?: number;
  /** Retry-After values above this are cut to it, so one server hint cannot stall the client. @default 2_000 */
  maxRetryAfterMs?: number;
  /** @default Math.random */
  random?: () => number;
}

export interface OperationResult {
  ok: boolean;
  /** Last HTTP status, or 0 when the last attempt got none. */
  status: number;
  attempts: number;
  /** The success was a replay (`Idempotent-Replayed: true`). */
  replayed: boolean;
  /** Duration of the attempt that succeeded. */
  requestMs: number;
  /** First attempt to final answer, backoff included. */
  totalMs: number;
}

export interface RetryClient {
  post(url: string, headers: Record<string, string>, body: string): Promise<OperationResult>;
  close(): Promise<void>;
}

const RETRYABLE = new Set([408, 409, 425, 429, 500, 502, 503, 504]);

export function createRetryClient(options: RetryClientOptions = {}): RetryClient {
  const timeoutMs = options.timeoutMs ?? 1_000;
  const maxAttempts = options.maxAttempts ?? 10;
  const baseDelayMs = options.baseDelayMs ?? 50;
  const maxDelayMs = options.maxDelayMs ?? 1_000;
  const maxRetryAfterMs = options.maxRetryAfterMs ?? 2_000;
  const random = options.random ?? Math.random;
  const dispatcher = new Agent({ keepAliveTimeout: 10_000, connections: 256 });

  return {
    async post(url, headers, body) {
      const started = performance.now();
      let status = 0;
      for (let attempt = 1; ; attempt++) {
        const attemptStarted = performance.now();
        let retryAfterMs = 0;
        try {
          const response = await request(url, {
            method: 'POST',
            headers,
            body,
            dispatcher,
            signal: AbortSignal.timeout(timeoutMs),
          });
          await response.body.arrayBuffer();
          status = response.statusCode;
          if (status < 400) {
            const now = performance.now();
            return {
              ok: true,
              status,
              attempts: attempt,
              replayed: response.headers['idempotent-replayed'] === 'true',
              requestMs: now - attemptStarted,
              totalMs: now - started,
            };
          }
          if (!RETRYABLE.has(status)) return failure(status, attempt);
          retryAfterMs = parseRetryAfter(response.headers['retry-after']);
        } catch {
          status = 0; // reset, refused or timed out: the outcome is unknown, so retry with the same key
        }
        if (attempt >= maxAttempts) return failure(status, attempt);
        const backoff = random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
        await sleep(Math.max(backoff, Math.min(retryAfterMs, maxRetryAfterMs)));
      }

      function failure(last: number, attempts: number): OperationResult {
        return {
          ok: false,
          status: last,
          attempts,
          replayed: false,
          requestMs: 0,
          totalMs: performance.now() - started,
        };
      }
    },
    close: () => dispatcher.close(),
  };
}

/** RFC 9110 §10.2.3: delay-seconds or an HTTP-date. */
export function parseRetryAfter(value: string | string[] | undefined): number {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return 0;
  if (/^\d+$/.test(text.trim())) return Number(text) * 1_000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? 0 : Math.max(0, date - Date.now());
}
