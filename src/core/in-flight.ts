import type { Claimant } from './claim.js';
import { Counts } from './counts.js';
import type { Decision, ExecuteDecision } from './decision.js';
import { type ExecutionTracker, startExecution } from './execution.js';
import { type EngineRuntime, reject } from './runtime.js';
import type { StoreTransaction, TransactionalStore } from './store.js';
import { withTimeout } from './store-call.js';
import type { SettleSignals } from './waiters.js';

/**
 * The executions running in this process. The per-caller count bounds how many one caller
 * (tenant + principal, its slot) may run at once; the running keys tell a waiter that this
 * engine will signal the settle itself. One object per engine, and the tracker every execution
 * reports to: no closures per execution.
 */
export class InFlight implements ExecutionTracker {
  private readonly perSlot = new Counts();
  private readonly runningKeys = new Counts();
  private readonly signals: SettleSignals;
  /** For waiters: whether this engine runs `key` (made once, not per waiter). */
  readonly runsLocally = (key: string): boolean => this.runningKeys.has(key);

  constructor(signals: SettleSignals) {
    this.signals = signals;
  }

  /** How many requests the caller's slot has admitted here: claiming, waiting or running. */
  running(slot: string): number {
    return this.perSlot.get(slot);
  }

  /**
   * Takes one of the caller's `max` places, at admission: counted from here, not from the
   * acquired claim, so a burst that arrives before any claim returns cannot pass the cap. The
   * place is given back by `finished()`, by the execution or, for a request that does not run,
   * by `claimWithinCap`.
   */
  reserve(slot: string, max: number): boolean {
    if (this.perSlot.get(slot) >= max) return false;
    this.perSlot.increment(slot);
    return true;
  }

  /** An admitted request starts running here (its place was reserved at admission). */
  started(key: string): void {
    this.runningKeys.increment(key);
  }

  finished(slot: string): void {
    this.perSlot.decrement(slot);
  }

  stoppedRunning(key: string): void {
    this.runningKeys.decrement(key);
  }

  settled(key: string): void {
    // The key no longer runs here (written, released, or the lease is gone): wake waiters.
    this.signals.settled(key);
  }
}

/**
 * Starts the execution of a request whose claim was acquired under `token`. In transactional
 * mode the store's transaction opens first; if it cannot, the claim is released at once and
 * the request was not run.
 */
export function startClaimed(
  rt: EngineRuntime,
  c: Claimant,
  token: string,
  generation: number,
): Decision | Promise<Decision> {
  return rt.options.transactional
    ? startInTransaction(rt, c, token, generation)
    : run(rt, c, token, generation, undefined);
}

async function startInTransaction(
  rt: EngineRuntime,
  c: Claimant,
  token: string,
  generation: number,
): Promise<Decision> {
  const store = rt.store;
  let transaction: StoreTransaction;
  const open = () => (store as TransactionalStore).beginTransaction({ key: c.key, token });
  try {
    transaction = await withTimeout('begin', open, rt.options.storeTimeoutMs, (late) => void late.rollback());
  } catch (error) {
    rt.emit({ type: 'store-error', key: c.key, operation: 'begin', error });
    await store.release({ key: c.key, token, retentionMs: c.retentionMs }).catch(() => {});
    return reject(rt, 'store-unavailable', 'the request was not run; retry with the same key');
  }
  return run(rt, c, token, generation, transaction);
}

function run(
  rt: EngineRuntime,
  c: Claimant,
  token: string,
  generation: number,
  transaction: StoreTransaction | undefined,
): ExecuteDecision {
  rt.inFlight.started(c.key);
  return startExecution({
    options: rt.options,
    request: c.request,
    key: c.key,
    token,
    generation,
    leaseMs: c.leaseMs,
    retentionMs: c.retentionMs,
    transaction,
    slot: c.slot,
    tracker: rt.inFlight,
  });
}
