import { StoreMisconfiguredError, StoreUnavailableError } from '../core/errors.js';
import { RecordState, type StoredRecord } from '../core/store.js';
import { COLUMNS } from './postgres-schema.js';
import { decodeResponse } from './response-codec.js';

/* Turning what `pg` hands back (rows, errors) into the store contract's values. */

export type Row = Record<string, unknown>;

/** SQLSTATEs that mean the schema is missing or old, not that the database is down. */
const MISSING_SCHEMA = new Set(['42P01', '42703', '3F000']);

export function isRow(value: unknown): value is Row {
  return typeof value === 'object' && value !== null;
}

export function storeError(operation: string, error: unknown): Error {
  const code = sqlstateOf(error);
  if (code !== undefined && MISSING_SCHEMA.has(code)) {
    return new StoreMisconfiguredError(
      `postgres store: ${messageOf(error)}; run idemkit migrate (or migrate({ pool })) with columns ${COLUMNS.join(', ')}`,
      { cause: error },
    );
  }
  return new StoreUnavailableError(`postgres ${operation} failed: ${messageOf(error)}`, { cause: error });
}

/** Five digits and capitals: the server's answer, not a socket error's code (ECONNRESET). */
export function isSqlstate(code: unknown): code is string {
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

/** The server's SQLSTATE, on a `pg` error or on the store error that wraps one as `cause`. */
export function sqlstateOf(error: unknown): string | undefined {
  const own = (error as { code?: unknown } | null)?.code;
  if (isSqlstate(own)) return own;
  const cause = (error as { cause?: unknown } | null)?.cause;
  const code = (cause as { code?: unknown } | null | undefined)?.code;
  return isSqlstate(code) ? code : undefined;
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** bigint columns arrive as strings from pg (or as numbers, when the app set a type parser). */
export function toInt(value: unknown): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n)) throw new StoreUnavailableError(`postgres returned a bad integer: ${value}`);
  return n;
}

export function toRecord(row: Row): StoredRecord {
  const state = row.state;
  if (typeof row.key !== 'string' || typeof state !== 'string' || typeof row.fingerprint !== 'string') {
    throw new StoreUnavailableError('postgres returned a record of an unexpected shape');
  }
  const record: StoredRecord = {
    key: row.key,
    state: state as StoredRecord['state'],
    fingerprint: row.fingerprint,
    generation: toInt(row.generation),
    leaseUntil: toInt(row.lease_until),
    expiresAt: toInt(row.expires_at),
    createdAt: toInt(row.created_at),
    completedAt: row.completed_at === null ? null : toInt(row.completed_at),
  };
  if (state === RecordState.Completed && row.response instanceof Uint8Array) {
    record.response = decodeResponse(row.response);
  }
  return record;
}
