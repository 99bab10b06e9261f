import { Counts } from './counts.js';
import type { Decision } from './decision.js';
import { DEFAULTS } from './options.js';
import { toReplay } from './response.js';
import { type EngineRuntime, reject } from './runtime.js';
import type { StoredRecord } from './store.js';
import { type SettleSignals, type SettleSource, Waiter } from './waiters.js';

/*
 * What a claim that finds someone else's record for the same request leads to: a replay of the
 * stored result (or the 409 that says why there is none), or, while the first request still
 * runs, a wait for it to settle (wait mode) before claiming again.
 */

/** The answer for a completed (or uncertain) record of the same request. */
export function completed(rt: EngineRuntime, key: string, record: StoredRecord): Decision {
  if (record.state === 'uncertain') {
    rt.emit({ type: 'conflict', key, reason: 'outcome-uncertain' });
    return reject(rt, 'outcome-uncertain', 'the first attempt may have taken effect; check before retrying');
  }
  if (!record.response || record.response.bodyOmitted) {
    rt.emit({ type: 'conflict', key, reason: 'result-unavailable' });
    return reject(
      rt,
      'result-unavailable',
      'the first attempt completed, but its result was too large to keep',
    );
  }
  if (rt.options.onEvent) rt.emit({ type: 'replay', key, status: record.response.status });
  return { kind: 'replay', key, response: toReplay(record.response) };
}

/**
 * The duplicates waiting in this engine, counted per key (at most `maxWaitersPerKey` each). Its
 * executions wake their waiters; the store may wake them too when another process settles the
 * key (PostgreSQL NOTIFY, Redis pub/sub).
 */
export class WaitRoom {
  private readonly perKey = new Counts();
  private readonly signals: SettleSignals;
  private readonly fromStore: SettleSource | undefined;
  private readonly runsLocally: (key: string) => boolean;

  constructor(
    signals: SettleSignals,
    fromStore: SettleSource | undefined,
    runsLocally: (key: string) => boolean,
  ) {
    this.signals = signals;
    this.fromStore = fromStore;
    this.runsLocally = runsLocally;
  }

  /** A waiter for `key`, or undefined when the key already has the most waiters allowed. */
  enter(key: string): Waiter | undefined {
    if (this.perKey.get(key) >= DEFAULTS.maxWaitersPerKey) return undefined;
    this.perKey.increment(key);
    return new Waiter(key, this.signals, this.fromStore, this.runsLocally);
  }

  leave(key: string, waiter: Waiter): void {
    waiter.close();
    this.perKey.decrement(key);
  }
}
