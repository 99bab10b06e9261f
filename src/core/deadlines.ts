import { monotonicNow } from './clock.js';
import { unrefTimer } from './portable.js';

/**
 * Something due at a time: a store call's timeout, an execution's next heartbeat. Entries link
 * themselves into their list, so adding and removing one allocates nothing and costs O(1).
 */
export abstract class Deadline {
  /** Monotonic ms at which `due()` runs. */
  at = 0;
  /** @internal */ prev: Deadline | undefined = undefined;
  /** @internal */ next: Deadline | undefined = undefined;
  /** @internal */ list: DeadlineList | undefined = undefined;

  /** Called once when the deadline passes (at most one tick late), unless removed before. */
  abstract due(): void;
}

/** Entries of one duration, in the order they were added, which is also the order they fall due. */
class DeadlineList {
  head: Deadline | undefined;
  tail: Deadline | undefined;
  readonly durationMs: number;

  constructor(durationMs: number) {
    this.durationMs = durationMs;
  }
}

/**
 * One timer for many deadlines, instead of a `setTimeout` + `clearTimeout` (a Timeout object
 * and a timer-list update each) per store call or a `setInterval` per execution. Deadlines of
 * one duration fall due in the order they were added, so each duration keeps a FIFO list and a
 * tick only looks at list heads. The tick runs while anything is scheduled and stops on the
 * first tick that finds nothing; its period is a tenth of the shortest duration, at most
 * `maxTickMs`, so a deadline fires at most about 10 % (or `maxTickMs`) late.
 */
export class DeadlineScheduler {
  private readonly lists = new Map<number, DeadlineList>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private tickMs = Number.POSITIVE_INFINITY;
  private readonly keepsAlive: boolean;
  private readonly maxTickMs: number;

  /**
   * @param keepsAlive whether a scheduled deadline keeps the process running (a pending store
   *   call must still time out; a heartbeat must not hold the process open)
   */
  constructor(options: { keepsAlive: boolean; maxTickMs: number }) {
    this.keepsAlive = options.keepsAlive;
    this.maxTickMs = options.maxTickMs;
  }

  /** Schedules `entry` for `durationMs` from now (moving it if it was scheduled). */
  add(entry: Deadline, durationMs: number): void {
    if (entry.list) this.remove(entry);
    let list = this.lists.get(durationMs);
    if (!list) {
      list = new DeadlineList(durationMs);
      this.lists.set(durationMs, list);
    }
    entry.at = monotonicNow() + durationMs;
    entry.list = list;
    entry.prev = list.tail;
    entry.next = undefined;
    if (list.tail) list.tail.next = entry;
    else list.head = entry;
    list.tail = entry;
    const tick = Math.max(1, Math.min(this.maxTickMs, Math.floor(durationMs / 10)));
    if (!this.timer || tick < this.tickMs) this.start(tick);
  }

  /** Unschedules `entry`; nothing happens if it is not scheduled. */
  remove(entry: Deadline): void {
    const list = entry.list;
    if (!list) return;
    if (entry.prev) entry.prev.next = entry.next;
    else list.head = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else list.tail = entry.prev;
    entry.prev = entry.next = entry.list = undefined;
  }

  private start(tickMs: number): void {
    if (this.timer) clearInterval(this.timer);
    this.tickMs = tickMs;
    this.timer = setInterval(() => this.tick(), tickMs);
    if (!this.keepsAlive) unrefTimer(this.timer);
  }

  private tick(): void {
    const now = monotonicNow();
    let scheduled = false;
    let shortest = Number.POSITIVE_INFINITY;
    for (const list of this.lists.values()) {
      for (let entry = list.head; entry && entry.at <= now; entry = list.head) {
        this.remove(entry);
        try {
          entry.due();
        } catch {
          // A deadline's own work reports its errors; one that throws must not stop the others.
        }
      }
      if (list.head) {
        scheduled = true;
        shortest = Math.min(shortest, list.durationMs);
      } else this.lists.delete(list.durationMs);
    }
    if (!scheduled) {
      clearInterval(this.timer);
      this.timer = undefined;
      this.tickMs = Number.POSITIVE_INFINITY;
    } else {
      // The shortest duration may have gone: tick no faster than what is left needs.
      const wanted = Math.max(1, Math.min(this.maxTickMs, Math.floor(shortest / 10)));
      if (wanted > this.tickMs) this.start(wanted);
    }
  }
}
