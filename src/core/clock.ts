import type { Clock } from './store.js';

/** Wall-clock store time for memory and SQLite. */
export const systemClock: Clock = () => Date.now();

/** Monotonic milliseconds for engine-side timers: heartbeat schedule, deadlines, timeouts. */
export const monotonicNow = (): number => performance.now();

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
