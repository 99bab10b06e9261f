import { monotonicNow, sleep } from './clock.js';
import { Deadline, DeadlineScheduler } from './deadlines.js';
import type { CommitResult, ExecuteDecision, HandlerContext } from './decision.js';
import { IdempotencyError, isIdempotencyError, type ProblemCode } from './errors.js';
import type { IdempotencyEvent } from './events.js';
import { type Disposition, defaultClassify, type ResolvedOptions } from './options.js';
import { problemResponse } from './problem.js';
import type { EngineRequest } from './request.js';
import { type EngineResponse, markOriginal, toStoredResponse } from './response.js';
import { downstreamKeyFor } from './scope.js';
import type { CompleteRequest, IdempotencyStore, StoreTransaction } from './store.js';
import { isInProcess, storeCall, withTimeout } from './store-call.js';

export type { CommitResult, ExecuteDecision, HandlerContext } from './decision.js';

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
  /** The caller's in-flight slot (tenant + principal), handed back to the tracker. */
  slot: string;
  /** The engine's bookkeeping, told when this execution stops (one object per engine). */
  tracker: ExecutionTracker;
}

/** What the engine counts about running executions; shared by all of them, so no closures per request. */
export interface ExecutionTracker {
  /** Frees the per-principal in-flight slot; once per execution. */
  finished(slot: string): void;
  /** The key no longer runs under this execution here; once per execution. */
  stoppedRunning(key: string): void;
  /**
   * The key stopped running under this execution: its result, release or uncertain mark was
   * written (or failed), or the lease was lost. Wakes duplicates waiting on the key. May be
   * called more than once.
   */
  settled(key: string): void;
}

const COMPLETE_ATTEMPTS = 2;
/** Engines (by their resolved options) already warned that their classify() threw. */
const warnedClassify = new WeakSet<ResolvedOptions>();

/**
 * Every execution's heartbeat shares one unref'd ticking timer instead of a `setInterval` each
 * (a Timeout object and timer-list updates per request). A beat runs at most a tenth of its
 * interval (and at most 1 s) late, well inside the lease it renews (three intervals).
 */
const heartbeats = new DeadlineScheduler({ keepsAlive: false, maxTickMs: 1_000 });

/** Runs the claimed part of a request: heartbeat, abort on lease loss, and the final write. */
export function startExecution(p: ExecutionParams): ExecuteDecision {
  const execution = new Execution(p);
  return {
    kind: 'execute',
    key: p.key,
    ctx: execution.context(),
    commit: (response) => execution.commit(response),
    abort: (error) => execution.abort(error),
  };
}

/**
 * One claimed request. A class rather than a closure per step: an execution is made for every
 * executed request, and its methods then live once on the prototype. It is its own heartbeat
 * deadline (every lease/3, while it runs).
 */
class Execution extends Deadline {
  private readonly p: ExecutionParams;
  private readonly options: ResolvedOptions;
  private readonly store: IdempotencyStore;
  private readonly emit: (event: IdempotencyEvent) => void;
  private readonly beatMs: number;
  /** Created only when the handler reads ctx.signal: most never do, and it costs per request. */
  private controller: AbortController | undefined;
  private abortReason: unknown;
  private effectsStarted = false;
  private leaseLost = false;
  private finished = false;
  private beating = false;
  private lastRenewed = monotonicNow();
  private runningHere = true;

  constructor(p: ExecutionParams) {
    super();
    this.p = p;
    this.options = p.options;
    this.store = p.options.store;
    this.emit = p.options.onEvent ?? ignore;
    this.beatMs = Math.max(1, Math.floor(p.leaseMs / 3));
    heartbeats.add(this, this.beatMs);
    // No event object at all when nobody listens: this runs for every executed request.
    if (p.options.onEvent) this.emit({ type: 'execute', key: p.key, generation: p.generation });
  }

  context(): HandlerContext {
    return new ExecutionContext(this, this.p);
  }

  /** For ExecutionContext: the handler says its effects began. */
  markEffectsStarted(): void {
    this.effectsStarted = true;
  }

  signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  /** The heartbeat: every beatMs, like an unref'd setInterval (a slow beat is skipped, not queued). */
  due(): void {
    heartbeats.add(this, this.beatMs);
    void this.beat();
  }

  private async beat(): Promise<void> {
    if (this.beating || this.finished) return;
    this.beating = true;
    const { key, token, leaseMs, retentionMs } = this.p;
    const sentAt = monotonicNow();
    try {
      const renewed = await withTimeout(
        'heartbeat',
        () => this.store.heartbeat({ key, token, leaseMs, retentionMs }),
        this.options.storeTimeoutMs,
      );
      // A heartbeat that waited on the row lock through our own commit is no news.
      if (this.finished) return;
      if (renewed) this.lastRenewed = sentAt;
      else this.loseLease();
    } catch (error) {
      this.emit({ type: 'store-error', key, operation: 'heartbeat', error });
      // Without a renewal for a whole lease we can no longer assume we hold the key.
      if (monotonicNow() - this.lastRenewed >= leaseMs) this.loseLease();
    } finally {
      this.beating = false;
    }
  }

  private loseLease(): void {
    if (this.leaseLost) return;
    this.leaseLost = true;
    heartbeats.remove(this);
    this.emit({ type: 'lease-lost', key: this.p.key, generation: this.p.generation });
    this.abortReason = new IdempotencyError('lease-lost', 'the lease on this Idempotency-Key was lost');
    this.controller?.abort(this.abortReason);
    this.onSettled();
  }

  private onFinish(): void {
    this.p.tracker.finished(this.p.slot);
    this.stopRunning();
  }

  private onSettled(): void {
    this.stopRunning();
    this.p.tracker.settled(this.p.key);
  }

  private stopRunning(): void {
    if (!this.runningHere) return;
    this.runningHere = false;
    this.p.tracker.stoppedRunning(this.p.key);
  }

  private settle(): void {
    if (this.finished) throw new Error('idemkit: commit() or abort() was already called for this request');
    this.finished = true;
    heartbeats.remove(this);
  }

  commit(response: EngineResponse): Promise<CommitResult> {
    this.settle();
    return this.finish(response);
  }

  abort(error: unknown): Promise<CommitResult> {
    this.settle();
    if (this.leaseLost) {
      this.ended();
      return (this.p.transaction?.rollback() ?? Promise.resolve()).catch(ignore).then(leaseLostResult);
    }
    return this.finish(undefined, problemCodeOf(error));
  }

  /**
   * Ends the execution with the handler's response, or with `failure` (the code of a problem
   * idemkit answers because the handler failed). Every path frees the key one way or another:
   * each of the async steps below ends with `ended()`, and so does a throw here. Not itself
   * async, so the usual commit (a result to store) is one async frame, not two.
   */
  private finish(handed: EngineResponse | undefined, failure?: ProblemCode): Promise<CommitResult> {
    try {
      const tx = this.p.transaction;
      if (this.leaseLost) return this.endLeaseLost(tx);
      let response = handed ?? failureProblem(failure ?? 'handler-error', 'release');
      let disposition = this.classify(response);
      if (disposition === 'release' && this.effectsStarted) disposition = 'uncertain';
      // Our own answer to a failure says what a retry with this key will get.
      if (failure !== undefined) response = failureProblem(failure, disposition);
      if (disposition !== 'store') return this.endWithout(tx, response, disposition);
      return tx ? this.commitTransaction(tx, response) : this.storeResult(response);
    } catch (error) {
      this.ended();
      return Promise.reject(error);
    }
  }

  /** The execution is over (whatever its outcome): its slot is free and its waiters wake. */
  private ended(): void {
    this.onFinish();
    this.onSettled();
  }

  private async endLeaseLost(tx: StoreTransaction | undefined): Promise<CommitResult> {
    try {
      await tx?.rollback().catch(ignore);
      return leaseLostResult();
    } finally {
      this.ended();
    }
  }

  /** A result not to keep: the key is released, or held uncertain when effects may have begun. */
  private async endWithout(
    tx: StoreTransaction | undefined,
    response: EngineResponse,
    disposition: 'release' | 'uncertain',
  ): Promise<CommitResult> {
    const { key, token, retentionMs } = this.p;
    try {
      // Nothing the handler wrote through the transaction may survive a failure.
      await tx
        ?.rollback()
        .catch((error: unknown) => this.emit({ type: 'store-error', key, operation: 'rollback', error }));
      const store = this.store;
      const write = disposition === 'release' ? store.release : store.markUncertain;
      const call = () => write.call(store, { key, token, retentionMs });
      try {
        const owned = await withTimeout(disposition, call, this.options.storeTimeoutMs);
        if (!owned) {
          this.emit({ type: 'lease-lost', key, generation: this.p.generation });
          return leaseLostResult();
        }
      } catch (error) {
        // A release that fails leaves the lease to run out; the retry then takes over.
        this.emit({ type: 'store-error', key, operation: disposition, error });
      }
      this.emit({ type: disposition, key, status: response.status });
      return { response: markOriginal(response), disposition, durable: true };
    } finally {
      this.ended();
    }
  }

  /** A classify() that throws must not leave the key claimed: the default policy decides then. */
  private classify(response: EngineResponse): Disposition {
    const options = this.options;
    try {
      return options.classify(response, this.p.request);
    } catch (error) {
      if (!warnedClassify.has(options)) {
        warnedClassify.add(options);
        const reason = error instanceof Error ? error.message : String(error);
        options.onWarning(`idemkit: classify() threw (${reason}); the default policy decides instead`);
      }
      return defaultClassify(response);
    }
  }

  private async storeResult(response: EngineResponse): Promise<CommitResult> {
    const { options } = this;
    const { key, token, retentionMs } = this.p;
    try {
      const completion: CompleteRequest = {
        key,
        token,
        response: toStoredResponse(response, options.replayAllowlist(this.p.request), options.maxStoredBytes),
        retentionMs,
      };
      for (let attempt = 1; attempt <= COMPLETE_ATTEMPTS; attempt++) {
        try {
          if (!(await this.writeCompletion(completion))) {
            this.emit({ type: 'lease-lost', key, generation: this.p.generation });
            return leaseLostResult();
          }
          return { response: markOriginal(response), disposition: 'store', durable: true };
        } catch (error) {
          this.emit({ type: 'store-error', key, operation: 'complete', error });
          if (attempt < COMPLETE_ATTEMPTS) await sleep(50 * attempt);
        }
      }
      // The response is the truth: send it, and keep writing it until the lease ends (F3).
      this.emit({ type: 'non-durable', key });
      void this.flushInBackground(() => this.store.complete(completion), this.lastRenewed + this.p.leaseMs);
      return { response: markOriginal(response), disposition: 'store', durable: false };
    } finally {
      this.ended();
    }
  }

  /** One write of the result; an in-process store's straight away, with no closure to make. */
  private writeCompletion(completion: CompleteRequest): Promise<boolean> {
    const store = this.store;
    if (isInProcess(store)) return store.complete(completion);
    return storeCall(store, 'complete', () => store.complete(completion), this.options.storeTimeoutMs);
  }

  /** F3/F12 in transactional mode: the result and the handler's writes commit together. */
  private async commitTransaction(tx: StoreTransaction, response: EngineResponse): Promise<CommitResult> {
    try {
      return await this.commitWith(tx, response);
    } finally {
      this.ended();
    }
  }

  private async commitWith(tx: StoreTransaction, response: EngineResponse): Promise<CommitResult> {
    const { options, store } = this;
    const { key, token, retentionMs } = this.p;
    const stored = toStoredResponse(
      response,
      options.replayAllowlist(this.p.request),
      options.maxStoredBytes,
    );
    let outcome: 'committed' | 'lease-lost' | 'unknown';
    try {
      outcome = await tx.commit({ key, token, response: stored, retentionMs });
    } catch (error) {
      // The COMMIT failed and rolled everything back: free the key so the retry runs once.
      this.emit({ type: 'store-error', key, operation: 'commit', error });
      await tx.rollback().catch(ignore);
      const release = () => store.release({ key, token, retentionMs });
      await withTimeout('release', release, options.storeTimeoutMs).catch(ignore);
      return {
        response: problemResponse('store-unavailable', 'nothing was applied; retry with the same key'),
        disposition: 'release',
        durable: true,
      };
    }
    if (outcome === 'lease-lost') {
      this.emit({ type: 'lease-lost', key, generation: this.p.generation });
      return leaseLostResult();
    }
    if (outcome === 'unknown') {
      this.emit({ type: 'non-durable', key });
      return {
        response: problemResponse('outcome-unknown', 'retry with the same key: it replays or runs once'),
        disposition: 'unknown',
        durable: false,
      };
    }
    return { response: markOriginal(response), disposition: 'store', durable: true };
  }

  private async flushInBackground(call: () => Promise<boolean>, deadline: number): Promise<void> {
    const key = this.p.key;
    let delay = 100;
    while (monotonicNow() < deadline) {
      await sleep(Math.min(delay, Math.max(1, deadline - monotonicNow())));
      delay = Math.min(delay * 2, 2_000);
      try {
        const owned = await withTimeout('complete', call, this.options.storeTimeoutMs);
        this.emit({ type: 'flushed', key, ok: owned });
        this.onSettled();
        return;
      } catch (error) {
        this.emit({ type: 'store-error', key, operation: 'complete', error });
      }
    }
    this.emit({ type: 'flushed', key, ok: false });
  }
}

/**
 * The handler's `ctx`: a class, so `signal` is a getter on the prototype rather than an
 * accessor defined on every ctx. The two functions are getters too, each answering one arrow
 * function made on first read, so a handler may still take them off the object
 * (`const { effectsStarted } = ctx`) and call them later.
 */
class ExecutionContext implements HandlerContext {
  private readonly execution: Execution;
  private readonly key: string;
  readonly fencingToken: number;
  declare readonly transaction?: unknown;
  /** Made on first read: most handlers never call them, and two closures per request add up. */
  private downstreamKeyFn: (() => string) | undefined;
  private effectsStartedFn: (() => void) | undefined;

  constructor(execution: Execution, p: ExecutionParams) {
    this.execution = execution;
    this.key = p.key;
    this.fencingToken = p.generation;
    if (p.transaction) (this as { transaction?: unknown }).transaction = p.transaction.client;
  }

  get signal(): AbortSignal {
    return this.execution.signal();
  }

  get downstreamKey(): () => string {
    const key = this.key;
    this.downstreamKeyFn ??= () => downstreamKeyFor(key);
    return this.downstreamKeyFn;
  }

  get effectsStarted(): () => void {
    const execution = this.execution;
    this.effectsStartedFn ??= () => execution.markEffectsStarted();
    return this.effectsStartedFn;
  }
}

function ignore(): void {}

function leaseLostResult(): CommitResult {
  return {
    response: problemResponse('lease-lost', 'another attempt took over this key; retry with the same key'),
    disposition: 'lease-lost',
    durable: true,
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
