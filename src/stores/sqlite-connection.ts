import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { monotonicNow, sleep } from '../core/clock.js';
import { isIdempotencyError, StoreMisconfiguredError, StoreUnavailableError } from '../core/errors.js';
import { type StatementName, schemaSql, statementSql } from './sqlite-schema.js';

/*
 * The connection side of the SQLite store: the driver subset, opening a file, configuring a
 * handle, and the asynchronous retry that keeps SQLITE_BUSY from freezing the event loop.
 */

/** A prepared statement as the store uses it; better-sqlite3's fits (so do libsql's and node:sqlite's). */
export interface SqliteStatement {
  run(...params: unknown[]): { changes: number | bigint };
  get(...params: unknown[]): unknown;
}

/** The part of a SQLite connection the store calls. A better-sqlite3 `Database` fits as it is. */
export interface SqliteDatabase {
  prepare(sql: string): SqliteStatement;
  exec(sql: string): unknown;
}

/** A handle the store opened itself, and so may close. */
export type OwnedDatabase = SqliteDatabase & { close(): unknown };

export type Statements = Record<StatementName, SqliteStatement>;

export async function openFile(path: string, busyTimeoutMs: number): Promise<OwnedDatabase> {
  let Database: typeof import('better-sqlite3');
  try {
    ({ default: Database } = await import('better-sqlite3'));
  } catch (error) {
    throw new StoreMisconfiguredError(
      'sqliteStore({ path }) needs the better-sqlite3 package: npm install better-sqlite3 ' +
        '(or pass { database } from a SQLite driver the app already uses)',
      { cause: error },
    );
  }
  try {
    if (path !== ':memory:' && path !== '') await mkdir(dirname(path), { recursive: true });
    return new Database(path, { timeout: busyTimeoutMs });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new StoreUnavailableError(`sqlite cannot open ${path}: ${message}`, { cause: error });
  }
}

export interface HandleSettings {
  table: string;
  /** Set on the handle when defined; left as the app configured it otherwise. */
  busyTimeoutMs: number | undefined;
  synchronous: 'FULL' | 'NORMAL' | undefined;
}

/** Idempotent, so every process sharing the file runs it on open. */
export function prepareHandle(handle: SqliteDatabase, settings: HandleSettings): Statements {
  if (settings.busyTimeoutMs !== undefined) handle.exec(`PRAGMA busy_timeout = ${settings.busyTimeoutMs}`);
  if (settings.synchronous !== undefined) handle.exec(`PRAGMA synchronous = ${settings.synchronous}`);
  // WAL lets readers run beside the one writer; check() reports files that cannot use it (:memory:).
  handle.prepare('PRAGMA journal_mode = WAL').get();
  handle.exec(schemaSql(settings.table));
  const sql = Object.entries(statementSql(settings.table));
  return Object.fromEntries(sql.map(([name, text]) => [name, handle.prepare(text)])) as Statements;
}

/** SQLITE_BUSY and its extended codes (BUSY_SNAPSHOT, BUSY_RECOVERY), and SQLITE_LOCKED. */
export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/**
 * Runs one synchronous piece of work. better-sqlite3 waits for a lock synchronously (at most the
 * short busy_timeout); past that, this sleeps asynchronously, so the event loop keeps turning,
 * and tries again until `timeoutMs`. A lock that outlasts it is a 503, never "absent".
 */
export async function retryWhileBusy<T>(
  operation: string,
  work: () => T,
  timeoutMs: number,
  isClosed: () => boolean,
): Promise<T> {
  const deadline = monotonicNow() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    if (isClosed()) throw new StoreUnavailableError(`sqlite ${operation}: the store is closed`);
    try {
      return work();
    } catch (error) {
      if (isIdempotencyError(error)) throw error;
      if (!isBusy(error)) {
        const message = error instanceof Error ? error.message : String(error);
        throw new StoreUnavailableError(`sqlite ${operation} failed: ${message}`, { cause: error });
      }
      const left = deadline - monotonicNow();
      if (left <= 0) {
        const message = `sqlite ${operation}: database still locked after ${timeoutMs} ms`;
        throw new StoreUnavailableError(message, { cause: error });
      }
      // Full jitter, so colliding processes fall out of step; on average asleep at least as long
      // as SQLite's own blocking wait, so a waiting call leaves the event loop free most of the time.
      await sleep(Math.min(left, Math.random() * Math.min(100, 10 * 2 ** attempt)));
    }
  }
}
