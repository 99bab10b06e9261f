import { randomUUID } from 'node:crypto';
import { type IdempotentClient, isClientError } from '../../client/index.js';

/** What one side of the demo (direct or through the gateway) did, counted as it goes. */
export interface Tally {
  started: number;
  succeeded: number;
  failed: number;
  /** HTTP attempts, first tries and retries together. */
  requests: number;
  replays: number;
  /** Duration of each successful attempt. */
  requestMs: number[];
  /** First attempt to final answer per operation, retries and backoff included. */
  operationMs: number[];
}

export const newTally = (): Tally => ({
  started: 0,
  succeeded: 0,
  failed: 0,
  requests: 0,
  replays: 0,
  requestMs: [],
  operationMs: [],
});

export interface WorkloadOptions {
  client: IdempotentClient;
  /** `POST` target, e.g. `http://127.0.0.1:port/charges`. */
  url: string;
  /** Operation ids are `<prefix>-<n>`, so both sides share one ledger. */
  prefix: string;
  operations: number;
  concurrency: number;
  /** `performance.now()` after which no new operation starts; started ones finish. */
  deadline: number;
  signal?: AbortSignal;
  tally: Tally;
}

/**
 * Charges `operations` times with `concurrency` customers at once through `idemkit/client`. Each
 * operation gets one fresh Idempotency-Key, and its retries reuse it with the same body: the
 * client does its part right, and without idemkit the retries still charge twice.
 */
export async function runWorkload(options: WorkloadOptions): Promise<void> {
  const { client, url, prefix, operations, deadline, signal, tally } = options;
  let next = 0;
  async function customer(): Promise<void> {
    while (next < operations && performance.now() < deadline && !signal?.aborted) {
      const n = next++;
      tally.started++;
      const body = JSON.stringify({
        operation: `${prefix}-${n}`,
        amount: 500 + (n % 50) * 100,
        currency: 'eur',
      });
      const headers = {
        'content-type': 'application/json',
        // Each customer authenticates as themself: the gateway scopes keys by caller (and
        // refuses keyed requests from nobody), so one customer's key never meets another's.
        authorization: `Bearer sk_demo_customer_${n}`,
      };
      const started = performance.now();
      try {
        const response = await client.fetch(url, {
          method: 'POST',
          headers,
          body,
          idempotencyKey: randomUUID(),
        });
        tally.requests += response.idemkit.attempts;
        tally.operationMs.push(response.idemkit.elapsedMs);
        if (response.ok) {
          tally.succeeded++;
          tally.requestMs.push(response.idemkit.attemptMs);
          if (response.idemkit.replayed) tally.replays++;
        } else tally.failed++;
      } catch (error) {
        // No answer within the retries (or one the client surfaces as an error): the customer gives up.
        tally.requests += isClientError(error) ? error.attempts : 1;
        tally.operationMs.push(performance.now() - started);
        tally.failed++;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(options.concurrency, operations) }, customer));
}

/** Charges and duplicate charges of one side, read from the API's ledger. */
export function ledgerCounts(
  ledger: ReadonlyMap<string, number>,
  prefix: string,
): { charges: number; duplicates: number; chargedTwice: number } {
  let charges = 0;
  let duplicates = 0;
  let chargedTwice = 0;
  for (const [operation, count] of ledger) {
    if (!operation.startsWith(`${prefix}-`)) continue;
    charges += count;
    duplicates += Math.max(0, count - 1);
    if (count > 1) chargedTwice++;
  }
  return { charges, duplicates, chargedTwice };
}

/** Nearest-rank percentile; 0 for no samples. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}
