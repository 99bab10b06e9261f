import { hash } from 'node:crypto';
import { monotonicNow } from './clock.js';
import type { Decision } from './decision.js';
import { isIdempotencyError, type ProblemCode } from './errors.js';
import { type ExecutionTracker, startExecution } from './execution.js';
import { createFingerprint, fingerprintMatches, type VersionedSecret } from './fingerprint.js';
import { findKey } from './key-carriers.js';
import {
  DEFAULTS,
  type IdempotencyOptions,
  type ResolvedOptions,
  resolveOptions,
  waitMsOf,
} from './options.js';
import { problemResponse } from './problem.js';
import { type EngineRequest, headerValue } from './request.js';
import { toReplay } from './response.js';
import { DigestMemo, hashCredential, scopeHash } from './scope.js';
import type { ClaimResult, StoredRecord, StoreTransaction, TransactionalStore } from './store.js';
import { withTimeout } from './store-call.js';
import { StoreCheck } from './store-check.js';
import { ownerToken } from './token.js';
import { SettleSignals, Waiter } from './waiters.js';
import { type FetchHandler, handleFetch } from './web.js';

export type { Decision } from './decision.js';

export interface Idempotency {
  /** Decides what to do with a request; expected states are values, never throws for them. */
  begin(request: EngineRequest): Promise<Decision>;
  /** The whole flow for a Web `Request → Response` handler (what `idemkit/fetch` uses). */
  handle(request: Request, handler: FetchHandler, native?: unknown): Promise<Response>;
  /**
   * Probes the store now, for a health endpoint: its `check()` (or a read when it has none)
   * within `storeTimeoutMs`. Shares the engine's check state: a passing check also lets
   * requests skip theirs. Never throws.
   */
  storeHealthy(): Promise<boolean>;
  /** The options as resolved (defaults filled in, frozen). */
  readonly options: ReturnType<typeof resolveOptions>;
  /** Stops the sweeper. The store is the caller's to close. */
  close(): Promise<void>;
}

const BYPASS: Decision = Object.freeze({ kind: 'bypass' });
const EMPTY = new Uint8Array(0);

/**
 * Creates the framework-neutral engine: key → scope → claim → execute → store → replay.
 * Adapters and the gateway translate requests into `begin()` and its decisions back.
 * @example
 * const idem = createIdempotency({ store: memoryStore() })
 * const d = await idem.begin({ method: 'POST', path: '/charges', headers, body })
 */
export function createIdempotency(input: IdempotencyOptions): Idempotency {
  const options = resolveOptions(input);
  const { store } = options;
  const emit = options.onEvent ?? (() => {});
  warnIfAnonymous(options);
  const inFlight = new Map<string, number>();
  const waiters = new Map<string, number>();
  // Wait mode: this engine's own executions wake their waiters; the store may wake them too
  // when another process settles the key (PostgreSQL NOTIFY, Redis pub/sub).
  const settleSignals = new SettleSignals();
  const runningKeys = new Map<string, number>();
  const storeSettle = store.onSettled?.bind(store);
  let secretsReady: Promise<readonly VersionedSecret[]> | undefined;

  /** The store's own secret is read once, lazily; a failure is retried by the next request. */
  function loadSecrets(): readonly VersionedSecret[] | Promise<readonly VersionedSecret[]> {
    if (options.secrets) return options.secrets;
    secretsReady ??= (store.defaultSecret as () => Promise<string>)().then(
      (key) => Object.freeze([{ version: 0, key }]),
      (error: unknown) => {
        secretsReady = undefined;
        throw error;
      },
    );
    return secretsReady;
  }

  const storeCheck = new StoreCheck(store, options.storeTimeoutMs, emit);

  const sweeper =
    options.sweepIntervalMs > 0 ? setInterval(() => void sweep(), options.sweepIntervalMs) : undefined;
  sweeper?.unref();

  async function sweep(): Promise<void> {
    try {
      // Bounded per tick, so a huge backlog never monopolises the store.
      for (let round = 0; round < 10; round++) {
        if ((await store.sweep(DEFAULTS.sweepBatch)) < DEFAULTS.sweepBatch) return;
      }
    } catch (error) {
      emit({ type: 'store-error', operation: 'sweep', error });
    }
  }

  function reject(code: ProblemCode, detail?: string): Decision {
    const response = problemResponse(code, detail);
    emit({ type: 'reject', code, status: response.status });
    return { kind: 'reject', code, response };
  }

  async function begin(request: EngineRequest): Promise<Decision> {
    const method = request.method.toUpperCase();
    if (!options.methods.has(method)) return BYPASS;
    const found = findKey(request, options);
    if (found.status === 'absent') {
      return options.required(request) ? reject('missing-key', 'send an Idempotency-Key header') : BYPASS;
    }
    if (found.status === 'invalid') return reject('invalid-key', found.reason);
    const body = request.body ?? EMPTY;
    if (body.byteLength > options.maxBodyBytes) {
      return reject('payload-too-large', `the body is larger than ${options.maxBodyBytes} bytes`);
    }

    const principal = options.principal
      ? ((await options.principal(request.native, request)) ?? '')
      : hashCredential(headerValue(request.headers, 'authorization'));
    if (principal === '' && options.requirePrincipal) {
      return reject('principal-required', 'authenticate before sending a key');
    }
    const tenant = options.tenant ? ((await options.tenant(request.native, request)) ?? '') : '';
    const key = scopeHash({ tenant, principal, method, path: request.path, key: found.key });
    // Counted, so an operator sees how much traffic shares the one anonymous scope.
    if (principal === '') emit({ type: 'anonymous', key });

    const slot = `${tenant.length}:${tenant}${principal}`;
    const running = inFlight.get(slot) ?? 0;
    if (running >= options.maxInFlightPerPrincipal) {
      return reject('capacity', `at most ${options.maxInFlightPerPrincipal} keyed requests may run at once`);
    }

    const fingerprint = createFingerprint(
      {
        method,
        path: request.path,
        query: request.query ?? '',
        contentType: headerValue(request.headers, 'content-type') ?? '',
        headers: options.fingerprintHeaders.map((h) => [h, headerValue(request.headers, h) ?? '']),
        body,
      },
      options.fingerprint,
    );
    if (!storeCheck.passed && (await storeCheck.misconfigured())) {
      return reject('store-misconfigured', 'the idempotency store failed its configuration check');
    }
    let known: readonly VersionedSecret[];
    try {
      known = await loadSecrets();
    } catch (error) {
      emit({ type: 'store-error', key, operation: 'secret', error });
      return reject('store-unavailable', 'the request was not run; retry with the same key');
    }
    const claimant: Claimant = {
      request,
      key,
      slot,
      fingerprint,
      secrets: known,
      print: fingerprint.digest(known[0] as VersionedSecret),
      leaseMs: options.leaseMs(request),
      retentionMs: options.retentionMs(request),
    };
    return claimAndDecide(claimant, waitMsOf(options.waitMs(request)));
  }

  interface Claimant {
    request: EngineRequest;
    key: string;
    slot: string;
    fingerprint: ReturnType<typeof createFingerprint>;
    secrets: readonly VersionedSecret[];
    print: string;
    leaseMs: number;
    retentionMs: number;
  }

  function claim(c: Claimant, token: string): Promise<ClaimResult> {
    const request = {
      key: c.key,
      fingerprint: c.print,
      token,
      leaseMs: c.leaseMs,
      retentionMs: c.retentionMs,
      partition: partitionOf(c.slot),
    };
    return withTimeout(
      'claim',
      () => store.claim(request),
      options.storeTimeoutMs,
      (late) => {
        // Granted after we answered 503: free it now instead of blocking the key for a lease.
        if (late.outcome === 'acquired') {
          store.release({ key: c.key, token, retentionMs: c.retentionMs }).catch(() => {});
        }
      },
    );
  }

  async function claimAndDecide(c: Claimant, waitMs: number): Promise<Decision> {
    const deadline = monotonicNow() + waitMs;
    let waiter: Waiter | undefined;
    try {
      for (;;) {
        const token = ownerToken();
        let result: ClaimResult;
        try {
          result = await claim(c, token);
        } catch (error) {
          // The store holds this caller's share of records: a per-caller refusal, not a store
          // failure, so neither a store-error nor a reason to fail open.
          if (isIdempotencyError(error) && error.code === 'capacity') {
            return reject(
              'capacity',
              'this caller holds too many idempotency records; retry once some expire',
            );
          }
          emit({ type: 'store-error', key: c.key, operation: 'claim', error });
          if (options.failOpen) {
            emit({ type: 'fail-open', key: c.key });
            return BYPASS;
          }
          const code =
            isIdempotencyError(error) && error.code === 'store-misconfigured' ? error.code : undefined;
          return reject(code ?? 'store-unavailable', 'the request was not run; retry with the same key');
        }
        if (result.outcome === 'acquired') {
          if (result.takeover) emit({ type: 'takeover', key: c.key, generation: result.generation });
          return await execute(c, token, result.generation);
        }
        if (!matches(c, result.record)) {
          emit({ type: 'mismatch', key: c.key });
          return reject('key-reused', 'this key was used for a different request; use a new key');
        }
        if (result.outcome === 'completed') return completed(c.key, result.record);
        if (samePrintUnderOldSecret(c, result.record)) continue;
        const remaining = deadline - monotonicNow();
        waiter ??= remaining > 0 ? enterWait(c.key) : undefined;
        if (remaining <= 0 || !waiter) {
          emit({ type: 'conflict', key: c.key, reason: 'in-progress' });
          return reject('in-progress', 'the first request with this key is still running; retry later');
        }
        // Until the first request settles (a wake-up) or the next poll; then claim again.
        await waiter.pause(remaining);
      }
    } finally {
      if (waiter) leaveWait(c.key, waiter);
    }
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

  function completed(key: string, record: StoredRecord): Decision {
    if (record.state === 'uncertain') {
      emit({ type: 'conflict', key, reason: 'outcome-uncertain' });
      return reject('outcome-uncertain', 'the first attempt may have taken effect; check before retrying');
    }
    if (!record.response || record.response.bodyOmitted) {
      emit({ type: 'conflict', key, reason: 'result-unavailable' });
      return reject(
        'result-unavailable',
        'the first attempt completed, but its result was too large to keep',
      );
    }
    emit({ type: 'replay', key, status: record.response.status });
    return { kind: 'replay', key, response: toReplay(record.response) };
  }

  function execute(c: Claimant, token: string, generation: number): Decision | Promise<Decision> {
    return options.transactional ? executeInTransaction(c, token, generation) : run(c, token, generation);
  }

  async function executeInTransaction(c: Claimant, token: string, generation: number): Promise<Decision> {
    let transaction: StoreTransaction;
    const open = () => (store as TransactionalStore).beginTransaction({ key: c.key, token });
    try {
      transaction = await withTimeout('begin', open, options.storeTimeoutMs, (late) => void late.rollback());
    } catch (error) {
      emit({ type: 'store-error', key: c.key, operation: 'begin', error });
      await store.release({ key: c.key, token, retentionMs: c.retentionMs }).catch(() => {});
      return reject('store-unavailable', 'the request was not run; retry with the same key');
    }
    return run(c, token, generation, transaction);
  }

  function run(c: Claimant, token: string, generation: number, transaction?: StoreTransaction): Decision {
    inFlight.set(c.slot, (inFlight.get(c.slot) ?? 0) + 1);
    runningKeys.set(c.key, (runningKeys.get(c.key) ?? 0) + 1);
    return startExecution({
      options,
      request: c.request,
      key: c.key,
      token,
      generation,
      leaseMs: c.leaseMs,
      retentionMs: c.retentionMs,
      transaction,
      slot: c.slot,
      tracker,
    });
  }

  /** Counts running executions: one object for the engine, not closures per execution. */
  const tracker: ExecutionTracker = {
    finished(slot) {
      const left = (inFlight.get(slot) ?? 1) - 1;
      if (left <= 0) inFlight.delete(slot);
      else inFlight.set(slot, left);
    },
    stoppedRunning(key) {
      const left = (runningKeys.get(key) ?? 1) - 1;
      if (left <= 0) runningKeys.delete(key);
      else runningKeys.set(key, left);
    },
    settled(key) {
      // The key no longer runs here (written, released, or the lease is gone): wake waiters.
      settleSignals.settled(key);
    },
  };

  /** A waiter for `key`, or undefined when the key already has the most waiters allowed. */
  function enterWait(key: string): Waiter | undefined {
    const count = waiters.get(key) ?? 0;
    if (count >= DEFAULTS.maxWaitersPerKey) return undefined;
    waiters.set(key, count + 1);
    return new Waiter(key, settleSignals, storeSettle, (k) => runningKeys.has(k));
  }

  function leaveWait(key: string, waiter: Waiter): void {
    waiter.close();
    const left = (waiters.get(key) ?? 1) - 1;
    if (left <= 0) waiters.delete(key);
    else waiters.set(key, left);
  }

  const engine: Idempotency = {
    begin,
    options,
    handle: (request, handler, native) => handleFetch(engine, request, handler, native),
    storeHealthy: () => storeCheck.probe(),
    async close() {
      if (sweeper) clearInterval(sweeper);
    },
  };
  return engine;
}

/**
 * Said once, when the engine is built, so the operator sees it at startup rather than after
 * the first unauthenticated request (which may never come in a test run).
 */
function warnIfAnonymous(options: ResolvedOptions): void {
  if (options.requirePrincipal) return;
  options.onWarning(
    'idemkit: requirePrincipal is false: keyed requests without a principal share one anonymous scope, where equal keys from different callers meet; each one emits an `anonymous` event',
  );
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
