import { randomBytes } from 'node:crypto';
import { systemClock } from '../core/clock.js';
import { IdempotencyConfigError, StoreMisconfiguredError, StoreUnavailableError } from '../core/errors.js';
import type { ClaimRequest, ClaimResult, Clock, IdempotencyStore, StoredRecord } from '../core/store.js';
import { decodeResponse, encodeResponse } from './response-codec.js';
import { createWriteBatcher, type WriteBatcher } from './sqlite-batch.js';
import {
  type OwnedDatabase,
  openFile,
  prepareHandle,
  retryWhileBusy,
  type SqliteDatabase,
  type Statements,
} from './sqlite-connection.js';
import { checkTableName, SCHEMA_VERSION } from './sqlite-schema.js';

export type { SqliteDatabase, SqliteStatement } from './sqlite-connection.js';

/** `{ path }`: the store opens (and closes) the file. `{ database }`: the app's connection. */
export type SqliteTarget = { path: string } | { database: SqliteDatabase };

export interface SqliteStoreOptions {
  /**
   * How long one call may wait for the write lock, retrying asynchronously with backoff, before
   * it fails with `StoreUnavailableError` (503). It never reports a busy database as "absent".
   * @default 1_000
   */
  timeoutMs?: number;
  /**
   * SQLite's own wait per attempt (`PRAGMA busy_timeout`). better-sqlite3 waits synchronously and
   * freezes the event loop meanwhile, so keep it short. With `{ database }` it is set only when given.
   * @default 50
   */
  busyTimeoutMs?: number;
  /**
   * `FULL` syncs the WAL on every commit; `NORMAL` may lose the last commits on power loss (not
   * on a process crash). With `{ database }` it is set only when given.
   * @default 'FULL'
   */
  synchronous?: 'FULL' | 'NORMAL';
  /** Store time source. Processes sharing a file are on one host, so they share one clock. @default Date.now */
  clock?: Clock;
  /** The records table; the meta table is `<table>_meta`. @default 'idemkit_records' */
  table?: string;
  /**
   * How often `PRAGMA wal_checkpoint(TRUNCATE)` runs so the WAL cannot grow without bound; 0 turns
   * it off. Off by default for `{ database }`: the app owns that connection's checkpoints.
   * @default 60_000 with { path }, 0 with { database }
   */
  checkpointIntervalMs?: number;
}

interface Opened {
  db: SqliteDatabase;
  s: Statements;
  batch: WriteBatcher;
}

interface Row extends Omit<StoredRecord, 'response'> {
  response: Uint8Array | null;
}

function positiveInt(name: string, value: number, allowZero = false): number {
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new IdempotencyConfigError(
      `sqliteStore: ${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${value}`,
    );
  }
  return value;
}

/**
 * A store in one SQLite file (WAL), which several processes on one host may share. It creates
 * its schema on first use and opens lazily: the factory returns at once, the first call opens.
 * @example
 * const idem = createIdempotency({ store: sqliteStore({ path: '.idemkit/idemkit.db' }) })
 */
export function sqliteStore(target: SqliteTarget, options: SqliteStoreOptions = {}): IdempotencyStore {
  const owns = 'path' in target;
  if (!owns && typeof target.database?.prepare !== 'function') {
    throw new IdempotencyConfigError(
      'sqliteStore: pass { path } or { database } (a better-sqlite3 Database)',
    );
  }
  const timeoutMs = positiveInt('timeoutMs', options.timeoutMs ?? 1_000);
  const busyTimeoutMs = positiveInt('busyTimeoutMs', options.busyTimeoutMs ?? 50, true);
  const checkpointMs = positiveInt(
    'checkpointIntervalMs',
    options.checkpointIntervalMs ?? (owns ? 60_000 : 0),
    true,
  );
  const synchronous = options.synchronous ?? (owns ? 'FULL' : undefined);
  if (synchronous !== undefined && synchronous !== 'FULL' && synchronous !== 'NORMAL') {
    throw new IdempotencyConfigError(
      `sqliteStore: synchronous must be 'FULL' or 'NORMAL', got ${synchronous}`,
    );
  }
  const table = checkTableName(options.table ?? 'idemkit_records');
  const now = options.clock ?? systemClock;

  let db: SqliteDatabase | undefined = owns ? undefined : target.database;
  let opening: Promise<Opened> | undefined;
  let secret: Promise<string> | undefined;
  let checkpointTimer: ReturnType<typeof setInterval> | undefined;
  let closed = false;

  const retrying = <T>(operation: string, work: () => T) =>
    retryWhileBusy(operation, work, timeoutMs, () => closed);

  async function open(): Promise<Opened> {
    db ??= await openFile((target as { path: string }).path, busyTimeoutMs);
    const handle = db;
    const settings = {
      table,
      synchronous,
      busyTimeoutMs: owns || options.busyTimeoutMs !== undefined ? busyTimeoutMs : undefined,
    };
    const s = await retrying('open', () => prepareHandle(handle, settings));
    if (checkpointMs > 0 && !closed) {
      checkpointTimer = setInterval(() => {
        try {
          s.checkpoint.get();
        } catch {
          // A busy checkpoint is retried on the next tick; the WAL only grows meanwhile.
        }
      }, checkpointMs);
      checkpointTimer.unref();
    }
    const isClosed = () => closed;
    const batch = createWriteBatcher({ db: handle, tx: s, timeoutMs, isClosed });
    return { db: handle, s, batch };
  }

  function ready(): Promise<Opened> {
    if (closed) return Promise.reject(new StoreUnavailableError('sqlite store is closed'));
    opening ??= open().catch((error: unknown) => {
      opening = undefined;
      throw error;
    });
    return opening;
  }

  /** A read, or a write that must commit on its own: outside any batch. */
  async function call<T>(operation: string, work: (s: Statements, db: SqliteDatabase) => T): Promise<T> {
    const { db: handle, s } = await ready();
    return retrying(operation, () => work(s, handle));
  }

  /** A write: it joins the next group commit and settles after that COMMIT (sqlite-batch.ts). */
  async function write<T>(operation: string, work: (s: Statements) => T): Promise<T> {
    const { s, batch } = await ready();
    return batch.submit(operation, () => work(s));
  }

  function toRecord(row: Row): StoredRecord {
    const { response, ...rest } = row;
    const record: StoredRecord = rest;
    if (response !== null && row.state === 'completed') record.response = decodeResponse(response);
    return record;
  }

  /**
   * One claim (see the lease timeline in types.ts). A read comes first, outside any batch: a
   * retry of a live or completed key (a replay, a 409) is then answered without taking SQLite's
   * single write lock, which a no-op upsert would take. Otherwise the upsert joins a batch.
   */
  async function claim(request: ClaimRequest): Promise<ClaimResult> {
    const row = await call('claim', (s) => s.get.get({ key: request.key }) as Row | undefined);
    if (row && !claimable(row, request.fingerprint, now())) return lost(row);
    return write('claim', (s) => claimInBatch(s, request));
  }

  /**
   * The upsert alone is atomic and writes only when the predicate holds. Inside the batch's
   * transaction the row cannot change between the upsert and the read after it, so a claim that
   * did not write reads the record that beat it (an earlier member of the same batch, or another
   * process) and answers with it: no retry loop.
   */
  function claimInBatch(s: Statements, request: ClaimRequest): ClaimResult {
    const at = now();
    const leaseUntil = at + request.leaseMs;
    const won = s.claim.get({
      key: request.key,
      fingerprint: request.fingerprint,
      token: request.token,
      leaseUntil,
      expiresAt: leaseUntil + request.retentionMs,
      now: at,
    }) as { generation: number; claimedFrom: string | null } | undefined;
    if (won?.claimedFrom === 'in_progress')
      return { outcome: 'acquired', generation: won.generation, takeover: true };
    if (won) return { outcome: 'acquired', generation: won.generation };
    const row = s.get.get({ key: request.key }) as Row | undefined;
    // The insert writes whenever no row exists, so a claim that wrote nothing found one.
    if (!row) throw new StoreUnavailableError('sqlite claim neither wrote nor found its key');
    return lost(row);
  }

  function lost(row: Row): ClaimResult {
    const record = toRecord(row);
    return { outcome: record.state === 'in_progress' ? 'in_progress' : 'completed', record };
  }

  /** The claim predicate of types.ts, for the rare row that changed between upsert and read. */
  function claimable(row: Row, fingerprint: string, at: number): boolean {
    return (
      row.state === 'released' ||
      row.expiresAt <= at ||
      (row.state === 'in_progress' && row.leaseUntil <= at && row.fingerprint === fingerprint)
    );
  }

  const changed = (result: { changes: number | bigint }) => Number(result.changes) > 0;

  return {
    name: 'sqlite',

    claim,

    heartbeat: ({ key, token, leaseMs, retentionMs }) =>
      write('heartbeat', (s) => {
        const leaseUntil = now() + leaseMs;
        return changed(s.heartbeat.run({ key, token, leaseUntil, expiresAt: leaseUntil + retentionMs }));
      }),

    complete: ({ key, token, response, retentionMs }) => {
      // Encoded now: the blob is a copy, so the caller may reuse its buffers.
      const blob = encodeResponse(response);
      return write('complete', (s) => {
        const at = now();
        return changed(s.complete.run({ key, token, now: at, expiresAt: at + retentionMs, response: blob }));
      });
    },

    release: ({ key, token, retentionMs }) =>
      write('release', (s) => changed(s.release.run({ key, token, expiresAt: now() + retentionMs }))),

    markUncertain: ({ key, token, retentionMs }) =>
      write('markUncertain', (s) => {
        const at = now();
        return changed(s.markUncertain.run({ key, token, now: at, expiresAt: at + retentionMs }));
      }),

    get: (key) =>
      call('get', (s) => {
        const row = s.get.get({ key }) as Row | undefined;
        return row ? toRecord(row) : undefined;
      }),

    delete: (key) => write('delete', (s) => changed(s.delete.run({ key }))),

    sweep: (limit) =>
      limit < 1
        ? Promise.resolve(0)
        : write('sweep', (s) => Number(s.sweep.run({ now: now(), limit }).changes)),

    async check() {
      const pragma = (s: Statements, name: 'journalMode' | 'synchronous') =>
        Object.values(s[name].get() as Record<string, unknown>)[0];
      const [mode, sync, version] = await call('check', (s) => [
        pragma(s, 'journalMode'),
        pragma(s, 'synchronous'),
        (s.metaGet.get({ name: 'schema_version' }) as { value: string } | undefined)?.value,
      ]);
      if (mode !== 'wal') {
        throw new StoreMisconfiguredError(
          `sqlite journal_mode is ${String(mode)}, not wal: use a file on a local disk (not :memory:)`,
        );
      }
      if (sync === 0) {
        throw new StoreMisconfiguredError(
          'sqlite synchronous is OFF: a crash may lose records; use FULL or NORMAL',
        );
      }
      if (version !== SCHEMA_VERSION) {
        throw new StoreMisconfiguredError(
          `sqlite schema version is ${version}, this idemkit reads ${SCHEMA_VERSION}`,
        );
      }
    },

    defaultSecret() {
      // The first process to ask writes one; INSERT OR IGNORE makes every later one read it back.
      secret ??= call('defaultSecret', (s) => {
        s.metaInsert.run({ name: 'secret', value: randomBytes(32).toString('base64url') });
        return (s.metaGet.get({ name: 'secret' }) as { value: string }).value;
      }).catch((error: unknown) => {
        secret = undefined;
        throw error;
      });
      return secret;
    },

    async close() {
      if (closed) return;
      closed = true;
      clearInterval(checkpointTimer);
      // An open still under way finishes first, so its handle is not leaked.
      await opening?.catch(() => undefined);
      if (owns && db) (db as OwnedDatabase).close();
    },
  };
}
