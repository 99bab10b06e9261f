import { hash } from 'node:crypto';
import { monotonicNow } from './clock.js';
import type { Decision } from './decision.js';
import { isIdempotencyError } from './errors.js';
import { type Fingerprint, fingerprintMatches, type VersionedSecret } from './fingerprint.js';
import { startClaimed } from './in-flight.js';
import { completed } from './replay-and-wait.js';
import type { EngineRequest } from './request.js';
import { BYPASS, type EngineRuntime, reject } from './runtime.js';
import { DigestMemo } from './scope.js';
import type { ClaimResult, StoredRecord } from './store.js';
import { storeCall } from './store-call.js';
import { ownerToken } from './token.js';
import type { Waiter } from './waiters.js';

/** A request that passed admission (begin.ts): everything its claim and execution need. */
export interface Claimant {
  request: EngineRequest;
  /** The store key: the scope hash. */
  key: string;
  /** The caller's in-flight slot: tenant + principal. */
  slot: string;
  fingerprint: Fingerprint;
  secrets: readonly VersionedSecret[];
  /** The fingerprint digest the claim sends: under the newest secret, or the record's older one. */
  print: string;
  leaseMs: number;
  retentionMs: number;
}

/** A claimant's secrets before `admitAndClaim` reads them. */
export const NO_SECRETS: readonly VersionedSecret[] = Object.freeze([]);

/**
 * Admits `c` within its caller's cap (`maxInFlightPerPrincipal`) and claims: the place is taken
 * before the first await, so concurrent requests count each other, and given back here for every
 * outcome that does not run (replay, conflict, refusal, store failure, a throw); an execution
 * gives it back when it finishes.
 */
export async function claimWithinCap(
  rt: EngineRuntime,
  c: Claimant,
  waitMs: number,
  refusal: string,
): Promise<Decision> {
  if (!rt.inFlight.reserve(c.slot, rt.options.maxInFlightPerPrincipal))
    return reject(rt, 'capacity', refusal);
  let decision: Decision;
  try {
    decision = await admitAndClaim(rt, c, waitMs);
  } catch (error) {
    rt.inFlight.finished(c.slot);
    throw error;
  }
  if (decision.kind !== 'execute') rt.inFlight.finished(c.slot);
  return decision;
}

/**
 * The last step of admission, shared by HTTP requests (begin.ts) and operation calls
 * (operation.ts): the store's startup check, the fingerprint secrets (the claimant's `secrets`
 * and `print` are filled in here), then the claim.
 */
export async function admitAndClaim(rt: EngineRuntime, c: Claimant, waitMs: number): Promise<Decision> {
  if (!rt.storeCheck.passed && (await rt.storeCheck.misconfigured())) {
    return reject(rt, 'store-misconfigured', 'the idempotency store failed its configuration check');
  }
  let known: readonly VersionedSecret[];
  try {
    // Usually an array already (configured, or read once): no await, so no extra microtask.
    const secrets = rt.secrets.get();
    known = Array.isArray(secrets) ? secrets : await secrets;
  } catch (error) {
    rt.emit({ type: 'store-error', key: c.key, operation: 'secret', error });
    return reject(rt, 'store-unavailable', 'the request was not run; retry with the same key');
  }
  c.secrets = known;
  c.print = c.fingerprint.digest(known[0] as VersionedSecret);
  return claimAndDecide(rt, c, waitMs);
}

/**
 * Claims the key and turns the outcome into a decision: acquired → execute; someone else's
 * request under this key → 409 key-reused; completed → replay; still running → wait and claim
 * again (wait mode, until `waitMs`), else 409 in-progress.
 */
export async function claimAndDecide(rt: EngineRuntime, c: Claimant, waitMs: number): Promise<Decision> {
  // Read the clock only when a duplicate has to wait: most claims are decided at once.
  let deadline = Number.NaN;
  let waiter: Waiter | undefined;
  try {
    for (;;) {
      const token = ownerToken();
      let result: ClaimResult;
      try {
        result = await claim(rt, c, token);
      } catch (error) {
        return claimFailed(rt, c, error);
      }
      if (result.outcome === 'acquired') {
        if (result.takeover) rt.emit({ type: 'takeover', key: c.key, generation: result.generation });
        return startClaimed(rt, c, token, result.generation);
      }
      if (!matches(c, result.record)) {
        rt.emit({ type: 'mismatch', key: c.key });
        return reject(rt, 'key-reused', 'this key was used for a different request; use a new key');
      }
      if (result.outcome === 'completed') return completed(rt, c.key, result.record);
      if (samePrintUnderOldSecret(c, result.record)) continue;
      if (Number.isNaN(deadline)) deadline = monotonicNow() + waitMs;
      const remaining = deadline - monotonicNow();
      waiter ??= remaining > 0 ? rt.waits.enter(c.key) : undefined;
      if (remaining <= 0 || !waiter) {
        rt.emit({ type: 'conflict', key: c.key, reason: 'in-progress' });
        return reject(rt, 'in-progress', 'the first request with this key is still running; retry later');
      }
      // Until the first request settles (a wake-up) or the next poll; then claim again.
      await waiter.pause(remaining);
    }
  } finally {
    if (waiter) rt.waits.leave(c.key, waiter);
  }
}

function claim(rt: EngineRuntime, c: Claimant, token: string): Promise<ClaimResult> {
  const store = rt.store;
  const request = {
    key: c.key,
    fingerprint: c.print,
    token,
    leaseMs: c.leaseMs,
    retentionMs: c.retentionMs,
    partition: partitionOf(c.slot),
  };
  return storeCall(
    store,
    'claim',
    () => store.claim(request),
    rt.options.storeTimeoutMs,
    (late) => {
      // Granted after we answered 503: free it now instead of blocking the key for a lease.
      if (late.outcome === 'acquired') {
        store.release({ key: c.key, token, retentionMs: c.retentionMs }).catch(() => {});
      }
    },
  );
}

/** The store could not answer the claim: 503 (or fail open), or 429 for a caller at its cap. */
function claimFailed(rt: EngineRuntime, c: Claimant, error: unknown): Decision {
  // The store holds this caller's share of records: a per-caller refusal, not a store
  // failure, so neither a store-error nor a reason to fail open.
  if (isIdempotencyError(error) && error.code === 'capacity') {
    return reject(rt, 'capacity', 'this caller holds too many idempotency records; retry once some expire');
  }
  rt.emit({ type: 'store-error', key: c.key, operation: 'claim', error });
  if (rt.options.failOpen) {
    rt.emit({ type: 'fail-open', key: c.key });
    return BYPASS;
  }
  const code = isIdempotencyError(error) && error.code === 'store-misconfigured' ? error.code : undefined;
  return reject(rt, code ?? 'store-unavailable', 'the request was not run; retry with the same key');
}

function matches(c: Claimant, record: StoredRecord): boolean {
  return record.fingerprint === c.print || fingerprintMatches(record.fingerprint, c.fingerprint, c.secrets);
}

/**
 * A record signed with an older secret version is the same request, but the store compares
 * fingerprints as strings for a takeover; claim again with the old version's digest, once.
 */
function samePrintUnderOldSecret(c: Claimant, record: StoredRecord): boolean {
  if (record.fingerprint === c.print) return false;
  c.print = record.fingerprint;
  return true;
}

/**
 * The store partition of a caller: a short hash of tenant + principal (the in-flight slot), so
 * a store can cap one caller's records without ever seeing who the caller is. Memoised: a caller
 * sends many requests.
 */
const partitions = new DigestMemo((slot) => hash('sha256', `partition:${slot}`, 'base64url').slice(0, 16));

function partitionOf(slot: string): string {
  return partitions.get(slot);
}
