import { createRetryBudget, type RetryBudget, type RetryBudgetOptions, UNLIMITED_BUDGET } from './budget.js';
import { ClientConfigError } from './errors.js';
import type { JournalOptions } from './journal.js';
import type { OpenApiOptions, OpenApiSource } from './openapi.js';
import { type CompiledRoute, compileRules, type RouteRule } from './routes.js';
import type { RetryEvent } from './run.js';

export interface RetryOptions {
  /** Retries after the first attempt. @default 2 */
  limit?: number;
  /** Backoff before retry n is random in [0, min(maxDelayMs, baseDelayMs · 2^(n-1))]. @default 100 */
  baseDelayMs?: number;
  /** @default 5_000 */
  maxDelayMs?: number;
  /**
   * A `Retry-After` longer than this ends the operation (the answer is returned with
   * `idemkit.stopped = 'retry-after-too-long'`) instead of holding the caller.
   * @default 30_000
   */
  maxRetryAfterMs?: number;
}

export interface ClientOptions {
  /** Prefix of every relative path: `createClient({ baseUrl: 'https://api.example.com/v1' }).fetch('/charges')`. */
  baseUrl?: string | URL;
  /** Headers of every request (credentials belong here: the journal never stores them). */
  headers?: HeadersInit;
  /** Retries per operation, or the full retry settings. @default 2 */
  retries?: number | RetryOptions;
  /** Each attempt's timeout, the response body included. @default 10_000 */
  timeoutMs?: number;
  /** The whole operation's deadline: attempts and backoff. @default 60_000 */
  deadlineMs?: number;
  /**
   * A retry budget shared by every operation of this client (a token bucket), or `false` for
   * none. @default { capacity: 500, retryCost: 5, timeoutRetryCost: 10, successRefund: 1 }
   */
  budget?: RetryBudgetOptions | false;
  /** Per-route policies; the first match wins, before the OpenAPI document and the method defaults. */
  routes?: readonly RouteRule[];
  /**
   * An OpenAPI 3 document (object, path or URL) whose operations are classified by the key
   * carriers they declare. Needs the optional peer `@readme/openapi-parser`.
   */
  openapi?: OpenApiSource | OpenApiOptions;
  /**
   * The policy of POST, PATCH and other non-idempotent methods that no call, route or document
   * classifies: `keyed` (an `Idempotency-Key` header) or `unsafe` (never retried once sent).
   * @default 'keyed'
   */
  nonIdempotentMethods?: 'keyed' | 'unsafe';
  /** A durable journal of operations in flight (SQLite): a file path or the full settings. */
  journal?: string | JournalOptions;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  onRetry?: (event: RetryEvent) => void;
  /** For tests. @default Math.random */
  random?: () => number;
}

export interface ResolvedClientOptions {
  baseUrl: URL | undefined;
  headers: readonly [string, string][];
  retries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  maxRetryAfterMs: number;
  timeoutMs: number;
  deadlineMs: number;
  budget: RetryBudget;
  routes: readonly CompiledRoute[];
  openapi: OpenApiOptions | undefined;
  nonIdempotentMethods: 'keyed' | 'unsafe';
  journal: JournalOptions | undefined;
  fetch: typeof fetch;
  onRetry: ((event: RetryEvent) => void) | undefined;
  random: () => number;
}

export const CLIENT_DEFAULTS = Object.freeze({
  retries: 2,
  baseDelayMs: 100,
  maxDelayMs: 5_000,
  maxRetryAfterMs: 30_000,
  timeoutMs: 10_000,
  deadlineMs: 60_000,
  nonIdempotentMethods: 'keyed' as const,
});

export function resolveClientOptions(options: ClientOptions): ResolvedClientOptions {
  const retry: RetryOptions =
    typeof options.retries === 'number' ? { limit: options.retries } : (options.retries ?? {});
  const resolved: ResolvedClientOptions = {
    baseUrl: options.baseUrl === undefined ? undefined : baseUrlOf(options.baseUrl),
    headers: [...new Headers(options.headers)],
    retries: count('retries', retry.limit ?? CLIENT_DEFAULTS.retries),
    baseDelayMs: count('retries.baseDelayMs', retry.baseDelayMs ?? CLIENT_DEFAULTS.baseDelayMs),
    maxDelayMs: count('retries.maxDelayMs', retry.maxDelayMs ?? CLIENT_DEFAULTS.maxDelayMs),
    maxRetryAfterMs: count(
      'retries.maxRetryAfterMs',
      retry.maxRetryAfterMs ?? CLIENT_DEFAULTS.maxRetryAfterMs,
    ),
    timeoutMs: positive('timeoutMs', options.timeoutMs ?? CLIENT_DEFAULTS.timeoutMs),
    deadlineMs: positive('deadlineMs', options.deadlineMs ?? CLIENT_DEFAULTS.deadlineMs),
    budget: options.budget === false ? UNLIMITED_BUDGET : createRetryBudget(options.budget),
    routes: compileRules(options.routes ?? []),
    openapi: openapiOf(options.openapi),
    nonIdempotentMethods: options.nonIdempotentMethods ?? CLIENT_DEFAULTS.nonIdempotentMethods,
    journal: typeof options.journal === 'string' ? { path: options.journal } : options.journal,
    fetch: options.fetch ?? globalThis.fetch,
    onRetry: options.onRetry,
    random: options.random ?? Math.random,
  };
  if (!['keyed', 'unsafe'].includes(resolved.nonIdempotentMethods)) {
    throw new ClientConfigError(`nonIdempotentMethods must be 'keyed' or 'unsafe'`);
  }
  return Object.freeze(resolved);
}

function baseUrlOf(value: string | URL): URL {
  try {
    return new URL(String(value));
  } catch {
    throw new ClientConfigError(`baseUrl must be an absolute URL, got ${JSON.stringify(String(value))}`);
  }
}

function openapiOf(value: ClientOptions['openapi']): OpenApiOptions | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'object' && !(value instanceof URL) && 'document' in value)
    return value as OpenApiOptions;
  return { document: value };
}

export function count(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ClientConfigError(`${name} must be a whole number ≥ 0, got ${value}`);
  }
  return value;
}

export function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new ClientConfigError(`${name} must be > 0, got ${value}`);
  return value;
}
