import { SCHEMA_VERSION, type TableName } from './postgres-schema.js';

/*
 * Every statement the PostgreSQL store sends, built once per table. Times come from the database
 * clock: `clock_timestamp()` read once per statement (a one-row subquery), so every deadline in a
 * row is computed from the same instant, and a statement inside a long transaction (transactional
 * mode, later) still sees the real time rather than the frozen `now()`.
 */

const NOW_MS = 'SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS n';
const RECORD =
  'key, state, fingerprint, generation, lease_until, expires_at, created_at, completed_at, response';

export interface Statement {
  name: string;
  text: string;
}

export interface Statements {
  claim: Statement;
  heartbeat: Statement;
  complete: Statement;
  release: Statement;
  markUncertain: Statement;
  get: Statement;
  delete: Statement;
  sweep: Statement;
  probe: Statement;
}

/**
 * @param settleChannel when set, the settling writes (complete, release, markUncertain) also
 *   send `pg_notify(settleChannel, key)` from their RETURNING clause: no extra round trip, and
 *   delivered only when the write commits (see postgres-listen.ts).
 */
export function statements(name: TableName, settleChannel?: string): Statements {
  const t = name.qualified;
  // pg caches a prepared statement per connection by name and refuses the same name with other
  // text, so the name carries the table and the schema version (and, near the front where a
  // long name is not truncated away, whether the statement notifies).
  const named = (op: string, text: string): Statement => ({
    name: `idemkit${SCHEMA_VERSION}:${name.id}:${op}`,
    text,
  });
  const settling = (op: string, text: string): Statement =>
    settleChannel === undefined
      ? named(op, text)
      : {
          name: `idemkit${SCHEMA_VERSION}n:${name.id}:${op}`,
          text: `${text}\nRETURNING pg_notify('${settleChannel}', r.key)`,
        };
  return {
    // See the lease timeline in types.ts. One statement: the upsert takes the key when the claim
    // predicate holds; otherwise `cur` hands back the row the loser saw.
    //
    // Bounded lock wait (docs/guarantees.md F12). ON CONFLICT DO UPDATE locks the existing row even
    // when the predicate is false, so it waits for any open transaction holding that row: in
    // transactional mode the owner's completion CAS holds it until COMMIT, and a partitioned host
    // can hold it for hours. `set_config('lock_timeout', $6, true)` is `SET LOCAL` evaluated in
    // `c`, before the INSERT reaches the row (a CTE with a volatile function is never inlined),
    // and it ends with this statement's implicit transaction: the wait is bounded (SQLSTATE 55P03,
    // see postgres.ts) in the same single round trip, and nothing leaks into the pooled
    // connection. Preferred over a BEGIN/SET LOCAL/COMMIT wrapper (3 more round trips per claim)
    // and over advisory locks (an extra lock on every claim, and a second lock protocol that the
    // transactional writer and every claim must keep in step).
    //
    // Fresh loser reads at READ COMMITTED. The statement's snapshot predates the lock wait, so a
    // plain SELECT would hand back the row as it was before the holder committed (in_progress
    // while it is completed). `FOR SHARE` makes PostgreSQL follow the row to its latest committed
    // version (EvalPlanQual) and return that; the row is already locked by ON CONFLICT, so this
    // adds no wait and no write. `FOR KEY SHARE` would not do: it does not conflict with a
    // non-key UPDATE and returns the stale version. A row inserted after the snapshot stays
    // invisible (no rows), and a takeable row means it changed under us: the caller runs the
    // statement again.
    claim: named(
      'claim',
      `WITH c AS (${NOW_MS}, set_config('lock_timeout', $6, true) AS lock_bound),
ins AS (
  INSERT INTO ${t} AS r (key, state, fingerprint, generation, owner_token, lease_until, expires_at, created_at)
  SELECT $1, 'in_progress', $2, 1, $3, c.n + $4, c.n + $4 + $5, c.n FROM c
  ON CONFLICT (key) DO UPDATE SET
    state = 'in_progress', fingerprint = EXCLUDED.fingerprint, generation = r.generation + 1,
    owner_token = EXCLUDED.owner_token, lease_until = EXCLUDED.lease_until,
    expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at, completed_at = NULL, response = NULL
  WHERE r.state = 'released'
     OR r.expires_at <= EXCLUDED.created_at
     OR (r.state = 'in_progress' AND r.lease_until <= EXCLUDED.created_at AND r.fingerprint = EXCLUDED.fingerprint)
  RETURNING r.generation
),
cur AS (
  SELECT (r.state = 'released' OR r.expires_at <= c.n
      OR (r.state = 'in_progress' AND r.lease_until <= c.n AND r.fingerprint = $2)) AS takeable,
    r.generation, r.state, r.fingerprint, r.lease_until, r.expires_at, r.created_at, r.completed_at, r.response
  FROM ${t} AS r, c
  WHERE r.key = $1 AND NOT EXISTS (SELECT 1 FROM ins)
  FOR SHARE OF r
)
SELECT true AS acquired, false AS takeable, ins.generation, NULL::text AS state, NULL::text AS fingerprint,
  NULL::bigint AS lease_until, NULL::bigint AS expires_at, NULL::bigint AS created_at,
  NULL::bigint AS completed_at, NULL::bytea AS response
FROM ins
UNION ALL
SELECT false, cur.takeable, cur.generation, cur.state, cur.fingerprint, cur.lease_until, cur.expires_at,
  cur.created_at, cur.completed_at, cur.response
FROM cur`,
    ),
    // Every write after the claim is a compare-and-set on the owner token (fencing).
    heartbeat: named(
      'heartbeat',
      `UPDATE ${t} AS r SET lease_until = c.n + $3, expires_at = c.n + $3 + $4 FROM (${NOW_MS}) AS c
WHERE r.key = $1 AND r.state = 'in_progress' AND r.owner_token = $2`,
    ),
    complete: settling(
      'complete',
      `UPDATE ${t} AS r SET state = 'completed', owner_token = NULL, completed_at = c.n,
  expires_at = c.n + $4, response = $3 FROM (${NOW_MS}) AS c
WHERE r.key = $1 AND r.state = 'in_progress' AND r.owner_token = $2`,
    ),
    // The tombstone keeps generation (and fingerprint), so the next claim fences at generation + 1.
    release: settling(
      'release',
      `UPDATE ${t} AS r SET state = 'released', owner_token = NULL, expires_at = c.n + $3 FROM (${NOW_MS}) AS c
WHERE r.key = $1 AND r.state = 'in_progress' AND r.owner_token = $2`,
    ),
    markUncertain: settling(
      'uncertain',
      `UPDATE ${t} AS r SET state = 'uncertain', owner_token = NULL, completed_at = c.n, expires_at = c.n + $3
FROM (${NOW_MS}) AS c
WHERE r.key = $1 AND r.state = 'in_progress' AND r.owner_token = $2`,
    ),
    get: named('get', `SELECT ${RECORD} FROM ${t} WHERE key = $1`),
    delete: named('delete', `DELETE FROM ${t} WHERE key = $1`),
    // One batch; SKIP LOCKED lets several sweepers (one per instance) share the work without
    // waiting on each other or on a claim that holds a row. The lease test repeats the rule that
    // in-progress records expire only after their lease (expires_at = lease_until + retention).
    sweep: named(
      'sweep',
      `DELETE FROM ${t} WHERE key IN (
  SELECT r.key FROM ${t} AS r, (${NOW_MS}) AS c
  WHERE r.expires_at <= c.n AND (r.state <> 'in_progress' OR r.lease_until <= c.n)
  LIMIT $1 FOR UPDATE OF r SKIP LOCKED)`,
    ),
    // Fails on a missing table or column; otherwise one row with the session settings that
    // bound an orphaned transaction (startup check, docs/guarantees.md).
    probe: named(
      'probe',
      `SELECT current_setting('lock_timeout') AS lock_timeout,
  current_setting('idle_in_transaction_session_timeout') AS idle_in_transaction_session_timeout,
  current_setting('default_transaction_isolation') AS default_transaction_isolation
WHERE NOT EXISTS (SELECT ${RECORD}, owner_token FROM ${t} WHERE false)`,
    ),
  };
}
