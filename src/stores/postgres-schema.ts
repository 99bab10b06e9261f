import { IdempotencyConfigError } from '../core/errors.js';

/*
 * The PostgreSQL schema, kept as a string so `tsc` ships it in dist (a .sql file would not be
 * copied). Times are epoch milliseconds in the database clock (bigint), so StoredRecord needs no
 * conversion and the claim predicate compares plain integers.
 */

/** Bumped when the table shape changes; part of every prepared statement name. */
export const SCHEMA_VERSION = 1;

/** The columns `check()` probes: a table missing any of them needs `idemkit migrate`. */
export const COLUMNS = [
  'key',
  'state',
  'fingerprint',
  'generation',
  'owner_token',
  'lease_until',
  'expires_at',
  'created_at',
  'completed_at',
  'response',
] as const;

/** `schema` and `table` exactly as the user gave them, checked and quoted once. */
export interface TableName {
  schema: string | undefined;
  table: string;
  /** `"schema"."table"` or `"table"` (then `search_path` decides, as for the app's own tables). */
  qualified: string;
  /** A stable identifier for statement names, so two stores on two tables never clash in `pg`. */
  id: string;
}

// Plain identifiers only: no quoting tricks to audit, and the same name works unquoted in psql.
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export function tableName(table = 'idemkit_records', schema?: string): TableName {
  for (const [option, value] of [
    ['table', table],
    ['schema', schema],
  ] as const) {
    if (value !== undefined && !IDENTIFIER.test(value)) {
      throw new IdempotencyConfigError(
        `postgresStore: ${option} must match ${IDENTIFIER.source} (letters, digits, _), got ${JSON.stringify(value)}`,
      );
    }
  }
  const qualified = schema === undefined ? `"${table}"` : `"${schema}"."${table}"`;
  return { schema, table, qualified, id: `${schema ?? ''}.${table}` };
}

/**
 * The DDL `migrate()` runs, as one simple-protocol query: PostgreSQL runs it as one implicit
 * transaction, and the advisory lock makes concurrent migrations (several instances starting at
 * once) wait instead of failing on `CREATE TABLE IF NOT EXISTS` races in the catalog.
 */
export function schemaSql(name: TableName): string {
  const index = `"${name.table}_expires_at_idx"`;
  return `
SELECT pg_advisory_xact_lock(hashtextextended('idemkit.migrate', 0));
${name.schema === undefined ? '' : `CREATE SCHEMA IF NOT EXISTS "${name.schema}";`}
CREATE TABLE IF NOT EXISTS ${name.qualified} (
  key          text PRIMARY KEY,
  state        text NOT NULL CHECK (state IN ('in_progress', 'completed', 'uncertain', 'released')),
  fingerprint  text NOT NULL,
  generation   bigint NOT NULL,
  owner_token  text,
  lease_until  bigint NOT NULL,
  expires_at   bigint NOT NULL,
  created_at   bigint NOT NULL,
  completed_at bigint,
  response     bytea
);
CREATE INDEX IF NOT EXISTS ${index} ON ${name.qualified} (expires_at);
`;
}
