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
