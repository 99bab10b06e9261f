import { beginRequest } from './begin.js';
import type { Decision } from './decision.js';
import { type FetchHandler, handleFetch } from './fetch-flow.js';
import { InFlight } from './in-flight.js';
import { type OperationCall, type OperationFn, runOperation } from './operation.js';
import { type IdempotencyOptions, type ResolvedOptions, resolveOptions } from './options.js';
import { WaitRoom } from './replay-and-wait.js';
import type { EngineRequest } from './request.js';
import type { EngineRuntime } from './runtime.js';
import { StoreCheck } from './store-check.js';
import { StoreSecrets } from './store-secrets.js';
import { startSweeper } from './sweeper.js';
import { SettleSignals } from './waiters.js';

export type { Decision } from './decision.js';

export interface Idempotency {
  /** Decides what to do with a request; expected states are values, never throws for them. */
  begin(request: EngineRequest): Promise<Decision>;
  /**
   * Runs `fn` once per (tenant, principal, operation, key) within retention, outside HTTP:
   * the same claim, lease, heartbeat, fencing and completion as a request. A retry gets the
   * stored result (JSON); the same key with other `params` throws `KeyReusedError`, a call
   * while the first runs `InFlightError` (with `retryAfterMs`), one after a failure past
   * `effectsStarted()` `OutcomeUncertainError`. When `fn` throws, the key is released and the
   * error passes through.
   */
  run<T>(call: OperationCall, fn: OperationFn<T>): Promise<T>;
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

/*
 * The engine, part by part:
 *   begin.ts            admission: coverage, key, scope, per-caller capacity, fingerprint
 *   claim.ts            the claim and what its outcome decides
 *   replay-and-wait.ts  a completed record replays; a running one is waited for (wait mode)
 *   in-flight.ts        an acquired claim starts its execution and is counted while it runs
 *   execution.ts        the execution: heartbeat, lease loss, the final write
 *   operation.ts        run(): the operation call (consumers, agent tools) on the same claim
 *   fetch-flow.ts       handle(): the whole flow for a Web Request → Response handler
 *   store-check.ts      the store's startup check, and the health probe
 *   store-secrets.ts    the fingerprint secrets (configured, or the store's own)
 *   sweeper.ts          expired records, deleted in the background
 */

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
  // This engine's own executions wake its waiters (see WaitRoom).
  const settleSignals = new SettleSignals();
  const inFlight = new InFlight(settleSignals);
  const rt: EngineRuntime = {
    options,
    store,
    emit,
    storeCheck: new StoreCheck(store, options.storeTimeoutMs, emit),
    secrets: new StoreSecrets(options.secrets, store),
    inFlight,
    waits: new WaitRoom(settleSignals, store.onSettled?.bind(store), inFlight.runsLocally),
  };
  const stopSweeper = startSweeper(rt);

  const engine: Idempotency = {
    begin: (request) => beginRequest(rt, request),
    options,
    run: (call, fn) => runOperation(rt, call, fn),
    handle: (request, handler, native) => handleFetch(engine, request, handler, native),
    storeHealthy: () => rt.storeCheck.probe(),
    async close() {
      stopSweeper?.();
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
