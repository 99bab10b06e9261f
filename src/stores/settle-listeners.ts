/*
 * The per-process side of a store's settle notifications (`IdempotencyStore.onSettled`): one
 * channel (a LISTEN connection, a Redis subscriber) per store instance carries every key, and
 * this registry hands each message to the waiters of its key.
 */

export class SettleListeners {
  private readonly byKey = new Map<string, Set<() => void>>();

  add(key: string, listener: () => void): () => void {
    let set = this.byKey.get(key);
    if (!set) {
      set = new Set();
      this.byKey.set(key, set);
    }
    set.add(listener);
    const own = set;
    // Bound to this subscription's set: after a notify the key may have a new set.
    return () => {
      if (!own.delete(listener)) return;
      if (own.size === 0 && this.byKey.get(key) === own) this.byKey.delete(key);
    };
  }

  /** A settle message for `key`: its waiters claim again (and subscribe anew if still waiting). */
  notify(key: string): void {
    const set = this.byKey.get(key);
    if (!set) return;
    this.byKey.delete(key);
    for (const listener of set) listener();
  }

  /**
   * The channel connected, reconnected or dropped: messages may have been missed, so every
   * waiter claims again. Subscriptions end here; a waiter that still waits subscribes anew and
   * learns whether the channel is up.
   */
  notifyAll(): void {
    const sets = [...this.byKey.values()];
    this.byKey.clear();
    for (const set of sets) for (const listener of set) listener();
  }

  get size(): number {
    return this.byKey.size;
  }
}

type ChannelPhase = 'idle' | 'connecting' | 'listening' | 'down' | 'closed';

/**
 * The life of one store's settle channel, shared by the PostgreSQL and Redis stores: opened on
 * the first wait, down for a while after a loss (waiters poll meanwhile), closed for good by
 * the store's close(). The store supplies `open`, which ends in `up()` or `down()`.
 */
export class SettleChannelState {
  readonly listeners = new SettleListeners();
  phase: ChannelPhase = 'idle';
  private downUntil = 0;
  private readonly open: () => Promise<void>;

  constructor(open: () => Promise<void>) {
    this.open = open;
  }

  /** Subscribes a waiter, or `undefined` while the channel is closed or down (the waiter polls). */
  subscribe(key: string, listener: () => void): (() => void) | undefined {
    if (this.phase === 'closed') return undefined;
    if (this.phase === 'down' && Date.now() < this.downUntil) return undefined;
    const unsubscribe = this.listeners.add(key, listener);
    if (this.phase === 'idle' || this.phase === 'down') void this.open();
    return unsubscribe;
  }

  /** Listening: a settle between a waiter's claim and now was not heard, so everyone claims again. */
  up(): void {
    this.phase = 'listening';
    this.listeners.notifyAll();
  }

  /** The channel is gone: try again after `retryAfterMs` (Infinity: never); every waiter claims again. */
  down(retryAfterMs: number): void {
    if (this.phase !== 'closed') {
      this.phase = 'down';
      this.downUntil = Date.now() + retryAfterMs;
    }
    this.listeners.notifyAll();
  }

  /** Read after an await: close() may have run meanwhile. */
  get closed(): boolean {
    return this.phase === 'closed';
  }

  /** False when it was closed already. */
  close(): boolean {
    if (this.phase === 'closed') return false;
    this.phase = 'closed';
    return true;
  }
}
