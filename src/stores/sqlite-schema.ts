import { IdempotencyConfigError } from '../core/errors.js';

/*
 * The SQLite schema and statements. Times are store-clock epoch milliseconds, so the claim
 * predicate compares plain numbers, exactly as memory.ts does. WITHOUT ROWID: the key is the
 * only lookup path, so the table is the primary-key B-tree itself.
 */

/** Kept in the meta table; `check()` refuses a file made by a newer, incompatible version. */
export const SCHEMA_VERSION = '2';

// Plain identifiers only, so names are pasted into SQL without quoting rules to audit.
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export function checkTableName(table: string): string {
  if (!IDENTIFIER.test(table)) {
    throw new IdempotencyConfigError(
      `sqliteStore: table must be a plain identifier, got ${JSON.stringify(table)}`,
    );
  }
  return table;
}

/** Idempotent: every process sharing the file runs it on open. */
export function schemaSql(table: string): string {
  return `
    CREATE TABLE IF NOT EXISTS ${table} (
      key          TEXT PRIMARY KEY NOT NULL,
      state        TEXT NOT NULL,
      fingerprint  TEXT NOT NULL,
      owner_token  TEXT,
      generation   INTEGER NOT NULL,
      lease_until  INTEGER NOT NULL,
      expires_at   INTEGER NOT NULL,
      created_at   INTEGER NOT NULL,
      completed_at INTEGER,
      response     BLOB,
      -- the state a claim found (NULL on first use): 'in_progress' marks a takeover
      claimed_from TEXT
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS ${table}_expires_at ON ${table} (expires_at);
    CREATE TABLE IF NOT EXISTS ${table}_meta (
      name  TEXT PRIMARY KEY NOT NULL,
      value TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO ${table}_meta (name, value) VALUES ('schema_version', '${SCHEMA_VERSION}');
  `;
}

const RECORD_COLUMNS = `key, state, fingerprint, generation, lease_until AS leaseUntil, expires_at AS expiresAt,
  created_at AS createdAt, completed_at AS completedAt, response`;

/** Every statement the store prepares, once per open. Parameters are named (`@name`). */
export function statementSql(table: string) {
  // Every write after the claim is a compare-and-set on the owner token (docs/guarantees.md).
  const owned = `WHERE key = @key AND state = 'in_progress' AND owner_token = @token`;
  return {
    /*
     * The claim predicate of types.ts as the upsert's WHERE: a new key inserts; an existing row
     * is overwritten (generation + 1) only when it is a release tombstone, a completed or
     * uncertain record past retention, or an in-progress record whose lease has lapsed and whose
     * fingerprint is the claimant's. Otherwise nothing is written and RETURNING yields no row.
     */
    claim: `
      INSERT INTO ${table} (key, state, fingerprint, owner_token, generation, lease_until, expires_at, created_at)
      VALUES (@key, 'in_progress', @fingerprint, @token, 1, @leaseUntil, @expiresAt, @now)
      ON CONFLICT (key) DO UPDATE SET
        state = 'in_progress', fingerprint = excluded.fingerprint, owner_token = excluded.owner_token,
        generation = ${table}.generation + 1, lease_until = excluded.lease_until,
        expires_at = excluded.expires_at, created_at = excluded.created_at, completed_at = NULL, response = NULL,
        claimed_from = ${table}.state
      WHERE ${table}.state = 'released'
         OR ${table}.expires_at <= @now
         OR (${table}.state = 'in_progress' AND ${table}.lease_until <= @now
             AND ${table}.fingerprint = excluded.fingerprint)
      RETURNING generation, claimed_from AS claimedFrom`,
    get: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE key = @key`,
    heartbeat: `UPDATE ${table} SET lease_until = @leaseUntil, expires_at = @expiresAt ${owned}`,
    complete: `UPDATE ${table} SET state = 'completed', owner_token = NULL, completed_at = @now,
      expires_at = @expiresAt, response = @response ${owned}`,
    release: `UPDATE ${table} SET state = 'released', owner_token = NULL, expires_at = @expiresAt ${owned}`,
    markUncertain: `UPDATE ${table} SET state = 'uncertain', owner_token = NULL, completed_at = @now,
      expires_at = @expiresAt ${owned}`,
    delete: `DELETE FROM ${table} WHERE key = @key`,
    // expires_at >= lease_until for an in-progress row, so the lease test only guards the invariant.
    sweep: `DELETE FROM ${table} WHERE key IN (
      SELECT key FROM ${table} WHERE expires_at <= @now AND (state <> 'in_progress' OR lease_until <= @now)
      LIMIT @limit)`,
    metaInsert: `INSERT OR IGNORE INTO ${table}_meta (name, value) VALUES (@name, @value)`,
    metaGet: `SELECT value FROM ${table}_meta WHERE name = @name`,
    journalMode: 'PRAGMA journal_mode',
    synchronous: 'PRAGMA synchronous',
    checkpoint: 'PRAGMA wal_checkpoint(TRUNCATE)',
    // Group commit (sqlite-batch.ts): IMMEDIATE takes the write lock at BEGIN, so a busy file
    // fails the batch before any of its statements ran, never halfway through.
    begin: 'BEGIN IMMEDIATE',
    commit: 'COMMIT',
    rollback: 'ROLLBACK',
  };
}

export type StatementName = keyof ReturnType<typeof statementSql>;
