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

export function statements(name: TableName): Statements {
  const t = name.qualified;
  // pg caches a prepared statement per connection by name and refuses the same name with other
  // text, so the name carries the table and the schema version.
  const named = (op: string, text: string): Statement => ({
    name: `idemkit${SCHEMA_VERSION}:${name.id}:${op}`,
    text,
  });
  return {
    // See the lease timeline in types.ts. One statement: the upsert takes the key when the claim
    // predicate holds; otherwise the second branch hands back the row the loser saw. That row comes
    // from the statement's snapshot, so a row committed after the snapshot can be invisible (no
    // rows at all) or stale (shows as takeable); the caller then runs the statement again.
    claim: named(
      'claim',
      `WITH c AS (${NOW_MS}),
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
)
SELECT true AS acquired, false AS takeable, ins.generation, NULL::text AS state, NULL::text AS fingerprint,
  NULL::bigint AS lease_until, NULL::bigint AS expires_at, NULL::bigint AS created_at,
  NULL::bigint AS completed_at, NULL::bytea AS response
FROM ins
UNION ALL
SELECT false, (r.state = 'released' OR r.expires_at <= c.n
    OR (r.state = 'in_progress' AND r.lease_until <= c.n AND r.fingerprint = $2)),
  r.generation, r.state, r.fingerprint, r.lease_until, r.expires_at, r.created_at, r.completed_at, r.response
FROM ${t} AS r, c
WHERE r.key = $1 AND NOT EXISTS (SELECT 1 FROM ins)`,
    ),
    // Every write after the claim is a compare-and-set on the owner token (fencing).
    heartbeat: named(
      'heartbeat',
      `UPDATE ${t} AS r SET lease_until = c.n + $3, expires_at = c.n + $3 + $4 FROM (${NOW_MS}) AS c
WHERE r.key = $1 AND r.state = 'in_progress' AND r.owner_token = $2`,
    ),
    complete: named(
      'complete',
      `UPDATE ${t} AS r SET state = 'completed', owner_token = NULL, completed_at = c.n,
  expires_at = c.n + $4, response = $3 FROM (${NOW_MS}) AS c
WHERE r.key = $1 AND r.state = 'in_progress' AND r.owner_token = $2`,
    ),
    // The tombstone keeps generation (and fingerprint), so the next claim fences at generation + 1.
    release: named(
      'release',
      `UPDATE ${t} AS r SET state = 'released', owner_token = NULL, expires_at = c.n + $3 FROM (${NOW_MS}) AS c
WHERE r.key = $1 AND r.state = 'in_progress' AND r.owner_token = $2`,
    ),
    markUncertain: named(
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
    probe: named('probe', `SELECT ${RECORD}, owner_token FROM ${t} WHERE false`),
  };
}
