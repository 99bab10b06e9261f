/*
 * Wake-ups for duplicates in wait mode. A duplicate that finds the key in progress sleeps until
 * the first request settles (completed, released, marked uncertain, lease lost) and then claims
 * again at once. Signals come from two sources:
 *   - this engine's own executions (always), through `SettleSignals`;
 *   - the store, when it can notify across processes (`IdempotencyStore.onSettled`: PostgreSQL
 *     LISTEN/NOTIFY, Redis pub/sub).
 * A signal can be lost (a dropped connection, a notification sent between the duplicate's claim
 * and its subscription), so a waiter also polls: fast when nothing will wake it, slowly as a
 * safety net when something will.
 */

/** Subscribes `listener` to settle signals for `key`; the result unsubscribes (undefined: cannot). */
export type SettleSource = (key: string, listener: () => void) => (() => void) | undefined;

/**
 * Poll cadence while waiting (first pause, doubling up to the max). Internal: tests raise
 * `watchedFirstMs` to prove that a waiter was woken rather than polled.
 */
export const waitCadence = {
  /** Nothing will signal the settle (another process holds the key, the store cannot notify). */
  pollFirstMs: 25,
  pollMaxMs: 500,
  /** A signal will come (this engine runs the key, or the store notifies): a safety net only. */
  watchedFirstMs: 250,
  watchedMaxMs: 2_000,
};

/** In-process settle signals, per key: one set of listeners per key that has waiters. */
export class SettleSignals {
  private readonly listeners = new Map<string, Set<() => void>>();

  subscribe(key: string, listener: () => void): () => void {
    let set = this.listeners.get(key);
    if (!set) {
      set = new Set();
      this.listeners.set(key, set);
    }
    set.add(listener);
    return () => {
      const current = this.listeners.get(key);
      if (!current?.delete(listener)) return;
      if (current.size === 0) this.listeners.delete(key);
    };
  }

  /** Wakes every listener of `key`. Listeners unsubscribe themselves (see Waiter). */
  settled(key: string): void {
    const set = this.listeners.get(key);
    if (!set) return;
    for (const listener of [...set]) listener();
  }

  /** Keys with listeners (for tests: nothing may stay subscribed once waits end). */
  get size(): number {
    return this.listeners.size;
  }
}

/**
 * One waiting duplicate. It stays subscribed from its first pause until `close()`, including
 * while its claims are in flight: a settle that lands during a claim (which may have read the
 * record just before) makes the next pause return at once. After each wake it subscribes anew,
 * so a store that dropped its channel can decline (and the waiter polls fast).
 */
export class Waiter {
  private unsubscribes: (() => void)[] = [];
  private storeWatching = false;
  private signalled = false;
  private wake: (() => void) | undefined;
  private pauses = 0;
  private closed = false;
  private readonly onSignal = () => {
    this.signalled = true;
    this.wake?.();
  };

  private readonly key: string;
  private readonly local: SettleSignals;
  private readonly store: SettleSource | undefined;
  /** True while this engine itself runs the key (its settle will be signalled locally). */
  private readonly runsLocally: (key: string) => boolean;

  constructor(
    key: string,
    local: SettleSignals,
    store: SettleSource | undefined,
    runsLocally: (key: string) => boolean,
  ) {
    this.key = key;
    this.local = local;
    this.store = store;
    this.runsLocally = runsLocally;
    this.subscribe();
  }

  /** Sleeps until a settle signal or the next poll, at most `remainingMs`. */
  async pause(remainingMs: number): Promise<void> {
    if (!this.signalled) {
      const watched = this.storeWatching || this.runsLocally(this.key);
      const [first, max] = watched
        ? [waitCadence.watchedFirstMs, waitCadence.watchedMaxMs]
        : [waitCadence.pollFirstMs, waitCadence.pollMaxMs];
      const ms = Math.min(first * 2 ** Math.min(this.pauses, 20), max, remainingMs);
      this.pauses++;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(0, ms));
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.wake = done;
      });
      this.wake = undefined;
    }
    if (this.signalled) {
      this.signalled = false;
      this.unsubscribe();
      this.subscribe();
    }
  }

  /** Removes every subscription; the waiter is done (answered, deadline, error). */
  close(): void {
    this.closed = true;
    this.wake?.();
    this.unsubscribe();
  }

  private subscribe(): void {
    if (this.closed) return;
    this.unsubscribes.push(this.local.subscribe(this.key, this.onSignal));
    let fromStore: (() => void) | undefined;
    try {
      fromStore = this.store?.(this.key, this.onSignal);
    } catch {
      // A store whose channel cannot subscribe just leaves the waiter polling.
    }
    this.storeWatching = fromStore !== undefined;
    if (fromStore) this.unsubscribes.push(fromStore);
  }

  private unsubscribe(): void {
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    this.storeWatching = false;
  }
}
