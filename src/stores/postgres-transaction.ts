import { StoreUnavailableError } from '../core/errors.js';
import type { CompleteRequest, StoreTransaction } from '../core/store.js';
import { withTimeout } from '../core/store-call.js';
import { isSqlstate } from './postgres-rows.js';
import type { Statement } from './postgres-sql.js';
import { encodeResponse } from './response-codec.js';

/*
 * Transactional mode. The claim has committed on its
 * own; the handler then writes through one pooled connection inside BEGIN … COMMIT, and commit()
 * adds the completion's owner-token CAS to the same transaction just before COMMIT:
 *
 *   claim (autocommit) ─ BEGIN ─ handler writes ─ CAS complete ─ COMMIT
 *                                                 └ 0 rows: ROLLBACK → 'lease-lost'
 *
 * The record row is locked only between the CAS and COMMIT (two round trips), so duplicates and
 * heartbeats do not queue behind a slow handler. READ COMMITTED is enough: the unique key and the
 * CAS decide, not snapshot isolation (F12). It is also required for handlers longer than a third
 * of the lease: at REPEATABLE READ or SERIALIZABLE the CAS meets the row version the engine's
 * heartbeat committed after the transaction's snapshot and fails with 40001 (503, nothing applied),
 * so `check()` warns when transactions would run at another level.
 */

/** A pooled connection as `pool.connect()` hands it out (a `pg.PoolClient` fits). */
export interface PostgresPoolClient {
  query(config: {
    name?: string;
    text: string;
    values?: unknown[];
    query_timeout?: number;
  }): Promise<{ rows: unknown[]; rowCount: number | null; command?: string }>;
  /** `release(error)` destroys the connection instead of returning it to the pool. */
  release(error?: Error | boolean): void;
  /**
   * pg emits connection errors on a checked-out client, and the pool listens only to idle ones:
   * with no listener of ours, a connection lost mid-transaction would be thrown as an uncaught
   * exception and end the app's process.
   */
  on?(event: 'error', listener: (error: Error) => void): unknown;
  removeListener?(event: 'error', listener: (error: Error) => void): unknown;
}

/** What handlers get as `ctx.transaction`: queries inside the transaction, nothing else. */
export interface PostgresTransactionClient {
  query(
    text: string,
    values?: unknown[],
  ): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>;
}

/** Isolation levels a transaction may be opened with (`postgresStore({ isolationLevel })`). */
export const ISOLATION_LEVELS = ['read committed', 'repeatable read', 'serializable'] as const;
export type IsolationLevel = (typeof ISOLATION_LEVELS)[number];

export async function openTransaction(
  connect: () => Promise<PostgresPoolClient>,
  complete: Statement,
  timeoutMs: number,
  isolationLevel: IsolationLevel | undefined,
): Promise<StoreTransaction<PostgresTransactionClient>> {
  const connection = await withTimeout('postgres connect', connect, timeoutMs, (late) => late.release());
  // The error also rejects the query in flight (or the next one), which is where it is handled.
  const ignore = () => {};
  connection.on?.('error', ignore);
  let open = true;
  const send = (text: string, values?: unknown[], name?: string) =>
    connection.query({
      text,
      query_timeout: timeoutMs,
      ...(values ? { values } : {}),
      ...(name ? { name } : {}),
    });

  /**
   * Ends the transaction once: a broken connection is destroyed, never pooled, and keeps our
   * listener (pg may still emit on it while the pool ends it); a healthy one goes back without it.
   */
  function finish(error?: Error): void {
    if (!open) return;
    open = false;
    if (!error) connection.removeListener?.('error', ignore);
    connection.release(error ?? false);
  }

  try {
    await send(isolationLevel === undefined ? 'BEGIN' : `BEGIN ISOLATION LEVEL ${isolationLevel}`);
  } catch (error) {
    finish(error as Error);
    throw new StoreUnavailableError(`postgres BEGIN failed: ${(error as Error).message}`, { cause: error });
  }

  return {
    client: {
      async query(text, values) {
        if (!open) throw new Error('idemkit: the transaction is already finished');
        const result = await connection.query({ text, ...(values ? { values } : {}) });
        return { rows: result.rows as Record<string, unknown>[], rowCount: result.rowCount };
      },
    },

    async commit(request: CompleteRequest) {
      if (!open) throw new StoreUnavailableError('postgres transaction is already finished');
      const values = [request.key, request.token, encodeResponse(request.response), request.retentionMs];
      let owned: boolean;
      try {
        owned = (await send(complete.text, values, complete.name)).rowCount === 1;
      } catch (error) {
        // The CAS failed (an aborted transaction, a timeout, a lost connection) before COMMIT
        // was sent: nothing is applied. The engine then releases the key.
        await rollbackQuietly();
        throw new StoreUnavailableError(`postgres completion failed: ${(error as Error).message}`, {
          cause: error,
        });
      }
      if (!owned) {
        await rollbackQuietly();
        return 'lease-lost';
      }
      let result: { command?: string };
      try {
        result = await send('COMMIT');
      } catch (error) {
        finish(error as Error);
        // An answer from the server (a SQLSTATE) means it rolled back; no answer means the COMMIT
        // may or may not have landed: the engine answers 503 outcome-unknown. Socket errors carry
        // string codes too (ECONNRESET, EPIPE), so only the SQLSTATE shape counts as an answer.
        if (isSqlstate((error as { code?: unknown }).code)) {
          throw new StoreUnavailableError(`postgres COMMIT failed: ${(error as Error).message}`, {
            cause: error,
          });
        }
        return 'unknown';
      }
      finish();
      // COMMIT of a transaction that had already failed answers ROLLBACK without an error.
      if (result.command === 'ROLLBACK') throw new StoreUnavailableError('postgres COMMIT rolled back');
      return 'committed';
    },

    async rollback() {
      await rollbackQuietly();
    },
  };

  async function rollbackQuietly(): Promise<void> {
    if (!open) return;
    try {
      await send('ROLLBACK');
      finish();
    } catch (error) {
      finish(error as Error);
    }
  }
}
