/**
 * A retry budget per client, the AWS SDK's "retry quota": retries spend tokens, successes earn
 * some back, and an empty bucket stops retrying. While a dependency is healthy the bucket stays
 * full; when it fails for everyone, retries stop after a bounded number instead of multiplying
 * the load on it (a retry storm). First attempts never cost anything.
 */
export interface RetryBudgetOptions {
  /** @default 500 */
  capacity?: number;
  /** Tokens a retry costs. @default 5 */
  retryCost?: number;
  /** Tokens a retry after a timeout costs: a timeout suggests overload, so it costs more. @default 10 */
  timeoutRetryCost?: number;
  /** Tokens a success earns back, up to the capacity. @default 1 */
  successRefund?: number;
}

export interface RetryBudget {
  /** Takes the tokens for one retry; false (nothing taken) when the bucket cannot pay. */
  take(afterTimeout: boolean): boolean;
  /** An operation succeeded. */
  refund(): void;
  readonly available: number;
}

export function createRetryBudget(options: RetryBudgetOptions = {}): RetryBudget {
  const capacity = options.capacity ?? 500;
  const retryCost = options.retryCost ?? 5;
  const timeoutRetryCost = options.timeoutRetryCost ?? 10;
  const successRefund = options.successRefund ?? 1;
  let tokens = capacity;
  return {
    take(afterTimeout) {
      const cost = afterTimeout ? timeoutRetryCost : retryCost;
      if (tokens < cost) return false;
      tokens -= cost;
      return true;
    },
    refund() {
      tokens = Math.min(capacity, tokens + successRefund);
    },
    get available() {
      return tokens;
    },
  };
}

/** A budget that always pays: `budget: false`. */
export const UNLIMITED_BUDGET: RetryBudget = Object.freeze({
  take: () => true,
  refund: () => {},
  available: Number.POSITIVE_INFINITY,
});
