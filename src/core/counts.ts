/**
 * Counts per name (a caller's requests in flight, a key's executions or waiters) that keeps a
 * name whose count fell to zero instead of deleting it at once, and drops such names in batches.
 * A `Map` shrinks its table when a delete leaves it a quarter full, and grows it again on the
 * next insert: with few names in flight (the usual case) every request paid a new table on its
 * way in or out, and that garbage was a twentieth of what the engine allocates per request.
 * At most `SWEEP_AT` zero counts are kept, so memory stays bounded by the names in flight.
 */
export class Counts {
  private readonly counts = new Map<string, number>();
  private zeros = 0;

  get(name: string): number {
    return this.counts.get(name) ?? 0;
  }

  has(name: string): boolean {
    return (this.counts.get(name) ?? 0) > 0;
  }

  /** Names held, zero counts included: at most the names counted now plus `SWEEP_AT`. */
  get held(): number {
    return this.counts.size;
  }

  increment(name: string): void {
    const count = this.counts.get(name);
    if (count === 0) this.zeros--;
    this.counts.set(name, (count ?? 0) + 1);
  }

  /** One less; a name that was never counted (or is at zero) stays at zero. */
  decrement(name: string): void {
    const count = this.counts.get(name);
    if (count === undefined || count === 0) return;
    this.counts.set(name, count - 1);
    if (count === 1 && ++this.zeros >= SWEEP_AT) this.sweep();
  }

  private sweep(): void {
    for (const [name, count] of this.counts) if (count === 0) this.counts.delete(name);
    this.zeros = 0;
  }
}

/** Zero counts kept before they are dropped together. */
const SWEEP_AT = 512;
