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
import { isInProcess, storeCall } from './store-call.js';
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
 * before the first await, so concurrent requests count each other, and given back for every
 * outcome that does not run (replay, conflict, refusal, store failure, a throw); an execution
 * gives it back when it finishes.
 *
 * Not itself async: once the store's check has passed and the secrets are known (every request
 * but the first few), the claim's one async frame (`claimAndDecide`) is the whole chain. Each
 * async layer costs a promise and a suspended frame per request, and that garbage is most of
 * what the engine collects.
 */
export function claimWithinCap(
  rt: EngineRuntime,
  c: Claimant,
  waitMs: number,
  /** What the caller runs, for the refusal: "at most N keyed requests may run at once". */
  counted: string,
): Promise<Decision> {
  const max = rt.options.maxInFlightPerPrincipal;
  if (!rt.inFlight.reserve(c.slot, max)) {
    return Promise.resolve(reject(rt, 'capacity', `at most ${max} ${counted} may run at once`));
  }
  const known = rt.storeCheck.passed ? knownSecrets(rt) : undefined;
  if (!known) return admitAndClaim(rt, c, waitMs);
  c.secrets = known;
  return claimAndDecide(rt, c, waitMs);
}

/** The secrets when they are at hand without waiting (configured, or read once), else undefined. */
function knownSecrets(rt: EngineRuntime): readonly VersionedSecret[] | undefined {
  try {
    const secrets = rt.secrets.get();
    return Array.isArray(secrets) ? secrets : undefined;
  } catch {
    return undefined; // admitAndClaim asks again, and reports the failure
  }
}

/**
 * The slow way in, until the store's startup check has passed and its secret has been read:
 * both awaited, then the claim. The caller's place (reserved by `claimWithinCap`) is given back
 * here when the request is refused or this throws; from the claim on, `claimAndDecide` does.
 */
async function admitAndClaim(rt: EngineRuntime, c: Claimant, waitMs: number): Promise<Decision> {
  let refused: Decision | undefined;
  try {
    if (!rt.storeCheck.passed && (await rt.storeCheck.misconfigured())) {
      refused = reject(rt, 'store-misconfigured', 'the idempotency store failed its configuration check');
    } else {
      try {
        c.secrets = await rt.secrets.get();
      } catch (error) {
        rt.emit({ type: 'store-error', key: c.key, operation: 'secret', error });
        refused = reject(rt, 'store-unavailable', 'the request was not run; retry with the same key');
      }
    }
  } catch (error) {
    rt.inFlight.finished(c.slot);
    throw error;
  }
  if (refused) {
    rt.inFlight.finished(c.slot);
    return refused;
  }
  return claimAndDecide(rt, c, waitMs);
}

/**
 * Claims the key and turns the outcome into a decision: acquired → execute; someone else's
 * request under this key → 409 key-reused; completed → replay; still running → wait and claim
 * again (wait mode, until `waitMs`), else 409 in-progress. Gives the caller's place back for
 * every decision but execute, and when it throws.
 */
async function claimAndDecide(rt: EngineRuntime, c: Claimant, waitMs: number): Promise<Decision> {
  // Read the clock only when a duplicate has to wait: most claims are decided at once.
  let deadline = Number.NaN;
  let waiter: Waiter | undefined;
  let decision: Decision | undefined;
  try {
    // The digest the claim sends: under the newest secret (an older one's, when a record says so).
    c.print = c.fingerprint.digest(c.secrets[0] as VersionedSecret);
    for (;;) {
      const token = ownerToken();
      let result: ClaimResult;
      try {
        result = await claim(rt, c, token);
      } catch (error) {
        decision = claimFailed(rt, c, error);
        return decision;
      }
      if (result.outcome === 'acquired') {
        if (result.takeover) rt.emit({ type: 'takeover', key: c.key, generation: result.generation });
        const started = startClaimed(rt, c, token, result.generation);
        decision = started instanceof Promise ? await started : started;
        return decision;
      }
      if (!matches(c, result.record)) {
        rt.emit({ type: 'mismatch', key: c.key });
        decision = reject(rt, 'key-reused', 'this key was used for a different request; use a new key');
        return decision;
      }
      if (result.outcome === 'completed') {
        decision = completed(rt, c.key, result.record);
        return decision;
      }
      if (samePrintUnderOldSecret(c, result.record)) continue;
      if (Number.isNaN(deadline)) deadline = monotonicNow() + waitMs;
      const remaining = deadline - monotonicNow();
      waiter ??= remaining > 0 ? rt.waits.enter(c.key) : undefined;
      if (remaining <= 0 || !waiter) {
        rt.emit({ type: 'conflict', key: c.key, reason: 'in-progress' });
        decision = reject(rt, 'in-progress', 'the first request with this key is still running; retry later');
        return decision;
      }
      // Until the first request settles (a wake-up) or the next poll; then claim again.
      await waiter.pause(remaining);
    }
  } finally {
    // Undefined here means a throw: the place is given back then too.
    if (decision?.kind !== 'execute') rt.inFlight.finished(c.slot);
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
  // No timeout race to set up, so no closures either (a throw here reaches the caller's catch).
  if (isInProcess(store)) return store.claim(request);
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
