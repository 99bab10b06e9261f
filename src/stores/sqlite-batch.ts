import { monotonicNow, sleep } from '../core/clock.js';
import { isIdempotencyError, StoreUnavailableError } from '../core/errors.js';
import { isBusy, type SqliteDatabase, type SqliteStatement } from './sqlite-connection.js';

/*
 * Group commit for the SQLite store. With synchronous=FULL every COMMIT is an fsync, and
 * better-sqlite3 runs it on the event loop: one write per transaction caps a process at one
 * fsync per write and freezes the loop for each. Here every write that arrives within one
 * macrotask (and every write that arrives while a batch waits for another process's lock) joins
 * one `BEGIN IMMEDIATE … COMMIT`: one fsync for all of them. Durability per call is unchanged:
 * a caller's promise settles only after the COMMIT that holds its write has returned.
 *
 * Each member runs as it would alone, in arrival order, inside the transaction, so a second
 * claim of a key the first member just took sees in_progress, and a completion after its own
 * claim finds the row. Nothing of a batch is visible to anyone (readers in this process
 * included) before its COMMIT.
 */

export interface TransactionStatements {
  begin: SqliteStatement;
  commit: SqliteStatement;
  rollback: SqliteStatement;
}

interface Member {
  operation: string;
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** monotonicNow() after which a busy database fails this member with a 503. */
  deadline: number;
}

export interface WriteBatcher {
  /** Queues `work` (synchronous statements) for the next batch; settles after its COMMIT. */
  submit<T>(operation: string, work: () => T): Promise<T>;
}

export interface BatcherSettings {
  db: SqliteDatabase;
  tx: TransactionStatements;
  timeoutMs: number;
  isClosed: () => boolean;
}

/** A member's own failure (not the batch's): the transaction is rolled back and the rest rerun. */
class MemberFailed {
  readonly index: number;
  readonly error: unknown;
  constructor(index: number, error: unknown) {
    this.index = index;
    this.error = error;
  }
}

export function createWriteBatcher({ db, tx, timeoutMs, isClosed }: BatcherSettings): WriteBatcher {
  let queue: Member[] = [];
  let scheduled = false;
  /** A batch is retrying a busy lock asynchronously: newcomers queue and join its next attempt. */
  let retrying = false;

  function schedule(): void {
    if (scheduled || retrying) return;
    scheduled = true;
    // setImmediate, not a microtask: every request whose data arrived in this poll phase reaches
    // its store call first (through its own microtasks), so they all share the fsync.
    setImmediate(flush);
  }

  function flush(): void {
    scheduled = false;
    const batch = queue;
    queue = [];
    if (batch.length > 0) void settle(batch);
  }

  /**
   * Runs a batch until it commits, sleeping asynchronously with jittered backoff while another
   * process holds the write lock (as retryWhileBusy does for single statements). A member whose
   * deadline passes meanwhile fails with StoreUnavailableError; nothing of it was written.
   */
  async function settle(first: Member[]): Promise<void> {
    let batch = first;
    for (let attempt = 0; batch.length > 0; ) {
      if (isClosed()) {
        for (const m of batch)
          m.reject(new StoreUnavailableError(`sqlite ${m.operation}: the store is closed`));
        break;
      }
      let results: unknown[];
      try {
        results = runOnce(batch);
      } catch (failure) {
        if (failure instanceof MemberFailed) {
          // Only that member fails; the others rerun at once in a fresh transaction.
          const [failed] = batch.splice(failure.index, 1);
          failed?.reject(asStoreError(failed.operation, failure.error));
          continue;
        }
        if (!isBusy(failure)) {
          for (const m of batch) m.reject(asStoreError(m.operation, failure));
          break;
        }
        const now = monotonicNow();
        batch = batch.filter((m) => {
          if (m.deadline > now) return true;
          const message = `sqlite ${m.operation}: database still locked after ${timeoutMs} ms`;
          m.reject(new StoreUnavailableError(message, { cause: failure }));
          return false;
        });
        if (batch.length === 0) break;
        retrying = true;
        const left = Math.min(...batch.map((m) => m.deadline)) - now;
        // Full jitter, so colliding processes fall out of step; on average asleep at least as
        // long as SQLite's own blocking wait, so the event loop stays free most of the time.
        await sleep(Math.min(left, Math.random() * Math.min(100, 10 * 2 ** attempt++)));
        // Writes that arrived while this batch slept share its next attempt (and its fsync).
        batch = batch.concat(queue);
        queue = [];
        continue;
      }
      for (let i = 0; i < batch.length; i++) batch[i]?.resolve(results[i]);
      break;
    }
    retrying = false;
    if (queue.length > 0) schedule();
  }

  /** One transaction over the whole batch; throws (after ROLLBACK) and then nothing was written. */
  function runOnce(batch: Member[]): unknown[] {
    // An app that hands its own handle over mid-transaction gets the writes inside it, as it
    // did before batching: SQLite has no nested BEGIN, and its COMMIT is the app's to run.
    const own = (db as { inTransaction?: unknown }).inTransaction !== true;
    if (own) tx.begin.run();
    const results: unknown[] = [];
    try {
      for (let i = 0; i < batch.length; i++) {
        try {
          results.push((batch[i] as Member).work());
        } catch (error) {
          throw isBusy(error) ? error : new MemberFailed(i, error);
        }
      }
      if (own) tx.commit.run();
    } catch (error) {
      if (own) rollbackQuietly();
      throw error;
    }
    return results;
  }

  function rollbackQuietly(): void {
    try {
      tx.rollback.run();
    } catch {
      // No transaction left to roll back (SQLite already did on a failed COMMIT).
    }
  }

  return {
    submit<T>(operation: string, work: () => T): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const deadline = monotonicNow() + timeoutMs;
        queue.push({ operation, work, resolve: resolve as (value: unknown) => void, reject, deadline });
        schedule();
      });
    },
  };
}

function asStoreError(operation: string, error: unknown): unknown {
  if (isIdempotencyError(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new StoreUnavailableError(`sqlite ${operation} failed: ${message}`, { cause: error });
}
