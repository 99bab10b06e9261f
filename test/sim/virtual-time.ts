/**
 * Virtual time for the engine. The engine reads monotonic time through `performance.now()` and
 * waits through `setTimeout`/`setInterval` (src/core/clock.ts, deadlines.ts, waiters.ts); it
 * has no clock option. While a run is installed, those globals are replaced by this queue, so
 * heartbeats, store-call timeouts, retry sleeps and wait-mode polls fire only when the scheduler
 * advances time, in a fixed order (due time, then creation order). `setImmediate` stays real:
 * the scheduler uses it to let every pending microtask run between two steps.
 */

interface Timer {
  id: number;
  at: number;
  seq: number;
  callback: () => void;
  repeatMs: number | undefined;
}

/** What `setTimeout` hands back: enough of Node's Timeout for the code under test. */
class Handle {
  readonly id: number;
  constructor(id: number) {
    this.id = id;
  }
  unref(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  hasRef(): boolean {
    return false;
  }
  [Symbol.toPrimitive](): number {
    return this.id;
  }
}

const saved = {
  setTimeout: globalThis.setTimeout,
  clearTimeout: globalThis.clearTimeout,
  setInterval: globalThis.setInterval,
  clearInterval: globalThis.clearInterval,
};

let installed: VirtualTime | undefined;

export class VirtualTime {
  /** Virtual monotonic milliseconds. */
  now = 1_000;
  private nextId = 1;
  private seq = 0;
  private readonly timers = new Map<number, Timer>();

  get pending(): number {
    return this.timers.size;
  }

  install(): void {
    if (installed) throw new Error('sim: virtual time is already installed');
    installed = this;
    const g = globalThis as Record<string, unknown>;
    g.setTimeout = (callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) =>
      this.add(() => callback(...args), ms ?? 0, undefined);
    g.setInterval = (callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) =>
      this.add(() => callback(...args), ms ?? 0, Math.max(1, ms ?? 1));
    g.clearTimeout = (handle: unknown) => this.clear(handle);
    g.clearInterval = (handle: unknown) => this.clear(handle);
    Object.defineProperty(performance, 'now', { value: () => this.now, configurable: true, writable: true });
  }

  uninstall(): void {
    if (installed !== this) return;
    installed = undefined;
    Object.assign(globalThis, saved);
    // The own property shadowed Performance.prototype.now; removing it restores the real one.
    delete (performance as unknown as Record<string, unknown>).now;
  }

  /** For diagnostics: what each pending timer would run. */
  describePending(): string[] {
    return [...this.timers.values()].map(
      (t) => `${t.repeatMs ? 'interval' : 'timeout'} ${t.at - this.now}ms`,
    );
  }

  /** The due time of the earliest timer, if any. */
  nextDue(): number | undefined {
    let best: Timer | undefined;
    for (const t of this.timers.values()) if (!best || before(t, best)) best = t;
    return best?.at;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way, in order. Returns
   * how many fired; at most `maxFires` (a bound against an interval that reschedules forever).
   */
  advance(ms: number, maxFires = 10_000): number {
    const target = this.now + ms;
    let fired = 0;
    for (; fired < maxFires; fired++) {
      const timer = this.earliestBy(target);
      if (!timer) break;
      this.now = Math.max(this.now, timer.at);
      this.fire(timer);
    }
    this.now = Math.max(this.now, target);
    return fired;
  }

  /** Fires the earliest timer (moving time to it). False when none is scheduled. */
  fireNext(): boolean {
    const due = this.nextDue();
    if (due === undefined) return false;
    const timer = this.earliestBy(due) as Timer;
    this.now = Math.max(this.now, timer.at);
    this.fire(timer);
    return true;
  }

  private earliestBy(limit: number): Timer | undefined {
    let best: Timer | undefined;
    for (const t of this.timers.values()) if (t.at <= limit && (!best || before(t, best))) best = t;
    return best;
  }

  private fire(timer: Timer): void {
    if (timer.repeatMs !== undefined) {
      timer.at += timer.repeatMs;
      timer.seq = this.seq++;
    } else this.timers.delete(timer.id);
    timer.callback();
  }

  private add(callback: () => void, ms: number, repeatMs: number | undefined): Handle {
    const id = this.nextId++;
    const delay = Math.max(1, Math.floor(Number.isFinite(ms) ? ms : 1));
    this.timers.set(id, { id, at: this.now + delay, seq: this.seq++, callback, repeatMs });
    return new Handle(id);
  }

  private clear(handle: unknown): void {
    if (handle instanceof Handle) this.timers.delete(handle.id);
    else if (typeof handle === 'number') this.timers.delete(handle);
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
