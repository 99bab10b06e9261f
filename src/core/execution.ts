import type { IdempotencyStore, StoreTransaction } from '../stores/types.js';
import { monotonicNow, sleep } from './clock.js';
import { IdempotencyError, isIdempotencyError, type ProblemCode } from './errors.js';
import { type Disposition, defaultClassify, type ResolvedOptions } from './options.js';
import { problemResponse } from './problem.js';
import type { EngineRequest } from './request.js';
import { type EngineResponse, markOriginal, toStoredResponse } from './response.js';
import { downstreamKeyFor } from './scope.js';
import { withTimeout } from './store-call.js';

/** What a handler gets while it runs under a claim. */
export interface HandlerContext {
  /** Fires when the lease is lost (taken over, or unrenewable for a whole lease): stop before effects. */
  readonly signal: AbortSignal;
  /** The record's generation: rises on every takeover, so a foreign system can reject older writers. */
  readonly fencingToken: number;
  /** A key for foreign calls (payments, email), stable across retries and takeovers. */
  downstreamKey(): string;
  /** Marks that effects began: a failure then holds the key as `uncertain` instead of releasing it. */
  effectsStarted(): void;
  /**
   * Transactional mode only: the store's transaction (for PostgreSQL a client with `query`).
   * Writes made through it commit together with the stored result, or not at all.
   */
  readonly transaction?: unknown;
}

export interface CommitResult {
  /** What to send: the handler's response marked as original, or a problem (409 `lease-lost`). */
  response: EngineResponse;
  disposition: Disposition | 'lease-lost' | 'unknown';
  /** False when the result could not be written yet (F3); a background flush keeps trying. */
  durable: boolean;
}

export interface ExecuteDecision {
  kind: 'execute';
  key: string;
  ctx: HandlerContext;
  /** Call once with the handler's response. Persists it before you answer (item 5). */
  commit(response: EngineResponse): Promise<CommitResult>;
  /** Call once when the handler threw; answers a sanitised 500 (or `lease-lost`). */
  abort(error?: unknown): Promise<CommitResult>;
}

export interface ExecutionParams {
  options: ResolvedOptions;
  request: EngineRequest;
  key: string;
  token: string;
  generation: number;
  leaseMs: number;
  retentionMs: number;
  /** Transactional mode: the transaction the handler writes through. */
  transaction?: StoreTransaction | undefined;
  /** Frees the per-principal in-flight slot. */
  onFinish(): void;
  /**
   * The key stopped running under this execution: its result, release or uncertain mark was
   * written (or failed), or the lease was lost. Wakes duplicates waiting on the key. May be
   * called more than once.
   */
  onSettled?(): void;
}

const COMPLETE_ATTEMPTS = 2;
/** Engines (by their resolved options) already warned that their classify() threw. */
const warnedClassify = new WeakSet<ResolvedOptions>();

/** Runs the claimed part of a request: heartbeat, abort on lease loss, and the final write. */
export function startExecution(p: ExecutionParams): ExecuteDecision {
  const { options, key, token } = p;
  const store: IdempotencyStore = options.store;
  const emit = options.onEvent ?? (() => {});
  // Created only when the handler reads ctx.signal: most never do, and it costs per request.
  let controller: AbortController | undefined;
  let abortReason: unknown;
  let effectsStarted = false;
  let leaseLost = false;
  let finished = false;
  let beating = false;
  let lastRenewed = monotonicNow();

  const heartbeat = setInterval(beat, Math.max(1, Math.floor(p.leaseMs / 3)));
  heartbeat.unref();
  emit({ type: 'execute', key, generation: p.generation });

  async function beat(): Promise<void> {
    if (beating || finished) return;
    beating = true;
    const sentAt = monotonicNow();
    try {
      const renewed = await withTimeout(
        'heartbeat',
        () => store.heartbeat({ key, token, leaseMs: p.leaseMs, retentionMs: p.retentionMs }),
        options.storeTimeoutMs,
      );
      // A heartbeat that waited on the row lock through our own commit is no news.
      if (finished) return;
      if (renewed) lastRenewed = sentAt;
      else loseLease();
    } catch (error) {
      emit({ type: 'store-error', key, operation: 'heartbeat', error });
      // Without a renewal for a whole lease we can no longer assume we hold the key.
      if (monotonicNow() - lastRenewed >= p.leaseMs) loseLease();
    } finally {
      beating = false;
    }
  }

  function loseLease(): void {
    if (leaseLost) return;
    leaseLost = true;
    clearInterval(heartbeat);
    emit({ type: 'lease-lost', key, generation: p.generation });
    abortReason = new IdempotencyError('lease-lost', 'the lease on this Idempotency-Key was lost');
    controller?.abort(abortReason);
    p.onSettled?.();
  }

  function settle(): void {
    if (finished) throw new Error('idemkit: commit() or abort() was already called for this request');
    finished = true;
    clearInterval(heartbeat);
  }

  function leaseLostResult(): CommitResult {
    return {
      response: problemResponse('lease-lost', 'another attempt took over this key; retry with the same key'),
      disposition: 'lease-lost',
      durable: true,
    };
  }

  /**
   * Ends the execution with the handler's response, or with `failure` (the code of a problem
   * idemkit answers because the handler failed). Every path frees the key one way or another.
   */
  async function finish(handed: EngineResponse | undefined, failure?: ProblemCode): Promise<CommitResult> {
    const tx = p.transaction;
    try {
      if (leaseLost) {
        await tx?.rollback().catch(() => {});
        return leaseLostResult();
      }
      let response = handed ?? failureProblem(failure ?? 'handler-error', 'release');
      let disposition = classify(response);
      if (disposition === 'release' && effectsStarted) disposition = 'uncertain';
      // Our own answer to a failure says what a retry with this key will get.
      if (failure !== undefined) response = failureProblem(failure, disposition);
      if (disposition === 'store')
        return tx ? await commitTransaction(tx, response) : await storeResult(response);
      // Nothing the handler wrote through the transaction may survive a failure.
      await tx
        ?.rollback()
        .catch((error: unknown) => emit({ type: 'store-error', key, operation: 'rollback', error }));
      const write = disposition === 'release' ? store.release : store.markUncertain;
      const call = () => write.call(store, { key, token, retentionMs: p.retentionMs });
      try {
        const owned = await withTimeout(disposition, call, options.storeTimeoutMs);
        if (!owned) {
          emit({ type: 'lease-lost', key, generation: p.generation });
          return leaseLostResult();
        }
      } catch (error) {
        // A release that fails leaves the lease to run out; the retry then takes over.
        emit({ type: 'store-error', key, operation: disposition, error });
      }
      emit({ type: disposition, key, status: response.status });
      return { response: markOriginal(response), disposition, durable: true };
    } finally {
      p.onFinish();
      p.onSettled?.();
    }
  }

  /** A classify() that throws must not leave the key claimed: the default policy decides then. */
  function classify(response: EngineResponse): Disposition {
    try {
      return options.classify(response, p.request);
    } catch (error) {
      if (!warnedClassify.has(options)) {
        warnedClassify.add(options);
        const reason = error instanceof Error ? error.message : String(error);
        options.onWarning(`idemkit: classify() threw (${reason}); the default policy decides instead`);
      }
      return defaultClassify(response);
    }
  }

  async function storeResult(response: EngineResponse): Promise<CommitResult> {
    const stored = toStoredResponse(response, options.replayAllowlist(p.request), options.maxStoredBytes);
    const call = () => store.complete({ key, token, response: stored, retentionMs: p.retentionMs });
    for (let attempt = 1; attempt <= COMPLETE_ATTEMPTS; attempt++) {
      try {
        if (!(await withTimeout('complete', call, options.storeTimeoutMs))) {
          emit({ type: 'lease-lost', key, generation: p.generation });
          return leaseLostResult();
        }
        return { response: markOriginal(response), disposition: 'store', durable: true };
      } catch (error) {
        emit({ type: 'store-error', key, operation: 'complete', error });
        if (attempt < COMPLETE_ATTEMPTS) await sleep(50 * attempt);
      }
    }
    // The response is the truth: send it, and keep writing it until the lease ends (F3).
    emit({ type: 'non-durable', key });
    void flushInBackground(call, lastRenewed + p.leaseMs);
    return { response: markOriginal(response), disposition: 'store', durable: false };
  }

  /** F3/F12 in transactional mode: the result and the handler's writes commit together. */
  async function commitTransaction(tx: StoreTransaction, response: EngineResponse): Promise<CommitResult> {
    const stored = toStoredResponse(response, options.replayAllowlist(p.request), options.maxStoredBytes);
    let outcome: 'committed' | 'lease-lost' | 'unknown';
    try {
      outcome = await tx.commit({ key, token, response: stored, retentionMs: p.retentionMs });
    } catch (error) {
      // The COMMIT failed and rolled everything back: free the key so the retry runs once.
      emit({ type: 'store-error', key, operation: 'commit', error });
      await tx.rollback().catch(() => {});
      const release = () => store.release({ key, token, retentionMs: p.retentionMs });
      await withTimeout('release', release, options.storeTimeoutMs).catch(() => {});
      return {
        response: problemResponse('store-unavailable', 'nothing was applied; retry with the same key'),
        disposition: 'release',
        durable: true,
      };
    }
    if (outcome === 'lease-lost') {
      emit({ type: 'lease-lost', key, generation: p.generation });
      return leaseLostResult();
    }
    if (outcome === 'unknown') {
      emit({ type: 'non-durable', key });
      return {
        response: problemResponse('outcome-unknown', 'retry with the same key: it replays or runs once'),
        disposition: 'unknown',
        durable: false,
      };
    }
    return { response: markOriginal(response), disposition: 'store', durable: true };
  }

  async function flushInBackground(call: () => Promise<boolean>, deadline: number): Promise<void> {
    let delay = 100;
    while (monotonicNow() < deadline) {
      await sleep(Math.min(delay, Math.max(1, deadline - monotonicNow())));
      delay = Math.min(delay * 2, 2_000);
      try {
        const owned = await withTimeout('complete', call, options.storeTimeoutMs);
        emit({ type: 'flushed', key, ok: owned });
        p.onSettled?.();
        return;
      } catch (error) {
        emit({ type: 'store-error', key, operation: 'complete', error });
      }
    }
    emit({ type: 'flushed', key, ok: false });
  }

  return {
    kind: 'execute',
    key,
    ctx: {
      get signal() {
        if (!controller) {
          controller = new AbortController();
          if (abortReason !== undefined) controller.abort(abortReason);
        }
        return controller.signal;
      },
      fencingToken: p.generation,
      downstreamKey: () => downstreamKeyFor(key),
      effectsStarted: () => {
        effectsStarted = true;
      },
      ...(p.transaction ? { transaction: p.transaction.client } : {}),
    },
    commit(response) {
      settle();
      return finish(response);
    },
    abort(error) {
      settle();
      if (leaseLost) {
        p.onFinish();
        p.onSettled?.();
        return (p.transaction?.rollback() ?? Promise.resolve()).catch(() => {}).then(leaseLostResult);
      }
      return finish(undefined, problemCodeOf(error));
    },
  };
}

/** The problem for a failed execution, worded for what its disposition makes of a retry. */
function failureProblem(code: ProblemCode, disposition: Disposition): EngineResponse {
  switch (disposition) {
    case 'release':
      return problemResponse(code, 'the request failed; retry with the same key');
    case 'uncertain':
      return problemResponse(
        code,
        'the request failed after its effects may have begun, so its outcome is uncertain; a retry with this key will be refused with 409 outcome-uncertain',
        { retryAfter: false },
      );
    case 'store':
      return problemResponse(
        code,
        'the request failed; this answer is kept, and a retry with this key replays it',
        {
          retryAfter: false,
        },
      );
  }
}

/** Errors idemkit itself raised (the gateway's upstream errors) keep their code; others are 500. */
function problemCodeOf(error: unknown): ProblemCode {
  if (isIdempotencyError(error) && error.status >= 500) return error.code;
  return 'handler-error';
}
