import type { AttemptOutcome } from './attempt.js';
import type { RetryPolicy } from './policy.js';

/** What the loop does with an attempt's outcome. */
export type Verdict =
  | { kind: 'final' }
  | { kind: 'retry'; afterTimeout: boolean }
  /** Retryable for a keyed operation, not for this unsafe one: the answer is returned as it is. */
  | { kind: 'unsafe-stop' }
  /** The request may have run and nobody can tell: thrown as OutcomeUnknownError. */
  | { kind: 'outcome-unknown'; why: string }
  | { kind: 'key-reused' };

/**
 * Statuses that say "not now": 408, 425, 429 and 5xx, except those a retry cannot change
 * (501 Not Implemented, 505 HTTP Version Not Supported, 511 Network Authentication Required).
 */
function transient(status: number): boolean {
  if (status === 408 || status === 425 || status === 429) return true;
  return status >= 500 && status !== 501 && status !== 505 && status !== 511;
}

/**
 * Statuses that say the request was not processed at all, so even an unsafe operation may go
 * again: the server did not get the whole request (408), refused early data (425), is rate
 * limiting (429) or is unavailable (503).
 */
const NOT_PROCESSED = new Set([408, 425, 429, 503]);

/**
 * The retry rules, per policy. Never retried: 400, 413, 422 and every other 4xx but 408, 409
 * `in-progress`/`lease-lost`, 425 and 429 (the request itself is wrong, and will stay wrong);
 * 409 `outcome-uncertain` (a retry is refused; someone must look). A 409 that carries
 * `Retry-After` is a transient conflict for a keyed operation (a server other than idemkit
 * telling it the first request is still running).
 */
export function judge(outcome: AttemptOutcome, policy: RetryPolicy): Verdict {
  if (outcome.kind === 'failure') {
    if (policy.kind !== 'unsafe' || outcome.notSent) return { kind: 'retry', afterTimeout: outcome.timedOut };
    return {
      kind: 'outcome-unknown',
      why: outcome.timedOut
        ? 'the attempt timed out after the request was sent'
        : 'the connection failed after the request was sent',
    };
  }
  const { status } = outcome.response;
  if (status === 409) {
    if (outcome.problem === 'outcome-uncertain') {
      return {
        kind: 'outcome-unknown',
        why: 'the server holds the key as uncertain (409 outcome-uncertain)',
      };
    }
    if (policy.kind === 'unsafe') return { kind: 'final' };
    const conflictInFlight = outcome.problem === 'in-progress' || outcome.problem === 'lease-lost';
    if (conflictInFlight || (policy.kind === 'keyed' && outcome.response.headers.has('retry-after'))) {
      return { kind: 'retry', afterTimeout: false };
    }
    return { kind: 'final' };
  }
  if (status === 422 && outcome.problem === 'key-reused') return { kind: 'key-reused' };
  if (!transient(status)) return { kind: 'final' };
  if (policy.kind === 'unsafe' && !NOT_PROCESSED.has(status)) return { kind: 'unsafe-stop' };
  return { kind: 'retry', afterTimeout: false };
}
