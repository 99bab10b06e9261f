import { monotonicNow } from './clock.js';
import { isIdempotencyError } from './errors.js';
import type { IdempotencyEvent } from './events.js';
import type { IdempotencyStore } from './store.js';
import { withTimeout } from './store-call.js';

/** A failed check is run again by a request at most this often. */
const RECHECK_MS = 5_000;
/** No record has this key (store keys are base64url hashes): reading it exercises the store. */
const PROBE_KEY = '0'.repeat(64);

/**
 * The store's startup check (eviction policy, schema, journal mode) runs before the first
 * claim; a misconfiguration answers 503 store-misconfigured and is checked again later. One
 * object per engine: once the check has passed, a request reads one field and pays nothing
 * more. A health endpoint probes through the same state (`probe()`).
 */
export class StoreCheck {
  /** The check passed (or the store has none): requests skip it from then on. */
  passed: boolean;
  private readonly store: IdempotencyStore;
  private readonly timeoutMs: number;
  private readonly emit: (event: IdempotencyEvent) => void;
  private nextCheckAt = 0;
  private lastError: unknown;

  constructor(store: IdempotencyStore, timeoutMs: number, emit: (event: IdempotencyEvent) => void) {
    this.store = store;
    this.timeoutMs = timeoutMs;
    this.emit = emit;
    this.passed = !store.check;
  }

  /** For a request, while `passed` is false: whether to refuse it as store-misconfigured. */
  async misconfigured(): Promise<boolean> {
    if (this.passed) return false;
    const now = monotonicNow();
    if (now >= this.nextCheckAt) {
      this.nextCheckAt = now + RECHECK_MS;
      try {
        await this.runCheck();
        return false;
      } catch (error) {
        this.lastError = error;
        this.emit({ type: 'store-error', operation: 'check', error });
      }
    }
    return isIdempotencyError(this.lastError) && this.lastError.code === 'store-misconfigured';
  }

  /**
   * For a health endpoint: the store's check() now (or, for a store without one, a read), within
   * the store timeout. A passing check lets requests skip theirs; a failing one is what the next
   * throttled request answers by. Never throws; emits nothing (probes repeat, requests count).
   */
  async probe(): Promise<boolean> {
    const store = this.store;
    try {
      if (store.check) await this.runCheck();
      else await withTimeout('get', () => store.get(PROBE_KEY), this.timeoutMs);
      return true;
    } catch (error) {
      if (store.check) this.lastError = error;
      return false;
    }
  }

  private async runCheck(): Promise<void> {
    await withTimeout('check', () => (this.store.check as () => Promise<void>)(), this.timeoutMs);
    this.passed = true;
  }
}
