import { type AttemptOutcome, type PreparedRequest, sendAttempt } from './attempt.js';
import { fullJitterDelay, parseRetryAfter } from './backoff.js';
import type { RetryBudget } from './budget.js';
import { ClientError, type ClientErrorCode, KeyReusedError, OutcomeUnknownError } from './errors.js';
import type { RetryPolicy } from './policy.js';
import { type ClientResponse, type StopReason, withInfo } from './response.js';
import { judge } from './verdict.js';

/** One logical operation: its request, fixed for every attempt, and how far it may be retried. */
export interface Operation extends PreparedRequest {
  policy: RetryPolicy;
  key: string | undefined;
}

/** Told before each retry: to log, count or trace it. */
export interface RetryEvent {
  /** The attempt about to be made (2 for the first retry). */
  attempt: number;
  key: string | undefined;
  method: string;
  url: string;
  /** How long the client waits first. */
  delayMs: number;
  /** The status of the answer that is retried; undefined when there was none. */
  status: number | undefined;
  /** The network error or timeout that is retried. */
  error: unknown;
}

export interface RunSettings {
  retries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  maxRetryAfterMs: number;
  timeoutMs: number;
  deadlineMs: number;
  budget: RetryBudget;
  fetch: typeof fetch;
  random: () => number;
  signal: AbortSignal | undefined;
  onRetry: ((event: RetryEvent) => void) | undefined;
  /** Called after each attempt (the journal counts them). */
  onAttempt: ((attempts: number) => void) | undefined;
}

const STOP_MESSAGES: Record<StopReason, string> = {
  'retries-exhausted': 'no attempt got an answer and the retries are used up',
  'deadline-exceeded': 'no attempt got an answer before the deadline',
  'budget-exhausted': "no attempt got an answer and the client's retry budget is empty",
  'retry-after-too-long': 'the server asked for a wait beyond maxRetryAfterMs',
  'unsafe-operation': 'the operation is unsafe',
};

/**
 * Runs an operation to its end: attempts, each within its timeout and the operation's
 * deadline, with capped exponential backoff and full jitter between them (or the server's
 * Retry-After, when longer), paid from the retry budget. Resolves with the final answer;
 * throws when there is none to give or the answer needs the caller (see `judge`).
 */
export async function runOperation(operation: Operation, settings: RunSettings): Promise<ClientResponse> {
  const started = performance.now();
  const deadline = started + settings.deadlineMs;
  let retryAfterMs: number | undefined;
  let attemptStarted = started;
  const answer = (response: Response, attempts: number, stopped: StopReason | undefined) =>
    withInfo(response, {
      key: operation.key,
      attempts,
      replayed: response.headers.get('idempotent-replayed') === 'true',
      policy: operation.policy,
      stopped,
      retryAfterMs,
      elapsedMs: performance.now() - started,
      attemptMs: performance.now() - attemptStarted,
    });

  for (let attempt = 1; ; attempt++) {
    attemptStarted = performance.now();
    const remaining = deadline - attemptStarted;
    const outcome = await sendAttempt(
      settings.fetch,
      operation,
      Math.min(settings.timeoutMs, remaining),
      settings.signal,
    );
    settings.onAttempt?.(attempt);
    retryAfterMs =
      outcome.kind === 'answer' ? parseRetryAfter(outcome.response.headers.get('retry-after')) : undefined;
    const verdict = judge(outcome, operation.policy);
    const details = () => ({
      key: operation.key,
      attempts: attempt,
      response: outcome.kind === 'answer' ? answer(outcome.response, attempt, undefined) : undefined,
      cause: outcome.kind === 'failure' ? outcome.error : undefined,
    });
    switch (verdict.kind) {
      case 'final':
        if (outcome.kind === 'answer' && outcome.response.status < 500) settings.budget.refund();
        return answer((outcome as Extract<AttemptOutcome, { kind: 'answer' }>).response, attempt, undefined);
      case 'unsafe-stop':
        return answer(
          (outcome as Extract<AttemptOutcome, { kind: 'answer' }>).response,
          attempt,
          'unsafe-operation',
        );
      case 'key-reused':
        throw new KeyReusedError(
          `the key ${operation.key} was used before for a request with other parameters (422 key-reused): a new operation needs a new key`,
          details(),
        );
      case 'outcome-unknown':
        throw new OutcomeUnknownError(
          `${operation.method} ${operation.url} may have been executed: ${verdict.why}. The operation is ${operation.policy.kind}, so the client does not retry it; look the result up before acting again`,
          details(),
        );
      case 'retry':
        break;
      default:
        return verdict satisfies never;
    }

    const wait = Math.max(
      fullJitterDelay(attempt, settings.baseDelayMs, settings.maxDelayMs, settings.random),
      retryAfterMs ?? 0,
    );
    const stop = stopReason(attempt, wait, verdict.afterTimeout);
    if (stop !== undefined) {
      if (outcome.kind === 'answer') return answer(outcome.response, attempt, stop);
      throw new ClientError(
        stop as Extract<StopReason, ClientErrorCode>,
        `${operation.method} ${operation.url}: ${STOP_MESSAGES[stop]} (${attempt} attempts)`,
        details(),
      );
    }
    settings.onRetry?.({
      attempt: attempt + 1,
      key: operation.key,
      method: operation.method,
      url: operation.url,
      delayMs: wait,
      status: outcome.kind === 'answer' ? outcome.response.status : undefined,
      error: outcome.kind === 'failure' ? outcome.error : undefined,
    });
    await pause(wait, settings.signal);
  }

  /** Why not to retry after `made` attempts, checked in this order; the budget is paid last. */
  function stopReason(made: number, wait: number, afterTimeout: boolean): StopReason | undefined {
    if (made > settings.retries) return 'retries-exhausted';
    if (retryAfterMs !== undefined && retryAfterMs > settings.maxRetryAfterMs) return 'retry-after-too-long';
    if (performance.now() + wait >= deadline) return 'deadline-exceeded';
    if (!settings.budget.take(afterTimeout)) return 'budget-exhausted';
    return undefined;
  }
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    function onAbort(): void {
      clearTimeout(timer);
      reject(signal?.reason);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
