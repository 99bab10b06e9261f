import pg from 'pg';

/*
 * Pools on the shared PostgreSQL (POSTGRES_URL, default 127.0.0.1:5432 database test) and a
 * random table per suite, dropped at the end. An unreachable server fails the test with how to
 * start it; nothing is skipped (conventions §7.4).
 */

export const POSTGRES_URL = process.env.POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const START = 'start it with: pg_ctlcluster 15 main start (trust auth, database test; or set POSTGRES_URL)';

export async function postgresPool(config: pg.PoolConfig = {}): Promise<pg.Pool> {
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3_000, ...config });
  // Idle clients whose server went away emit 'error' on the pool; outage tests cause that.
  pool.on('error', () => {});
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    await pool.end().catch(() => {});
    throw new Error(
      `PostgreSQL is not reachable at ${config.connectionString ?? POSTGRES_URL} (${(error as Error).message}); ${START}`,
    );
  }
  return pool;
}

/** A fresh table name for one suite; drop it with `dropTable`. */
export function randomTable(name: string): string {
  return `idemkit_test_${name}_${Math.random().toString(36).slice(2, 10)}`;
}

export async function dropTable(pool: pg.Pool, table: string): Promise<void> {
  await pool.query(`DROP TABLE IF EXISTS "${table}"`);
}

export interface TempSchema {
  readonly name: string;
  /** POSTGRES_URL with `search_path` set to the schema: migrate() and the store land there. */
  readonly url: string;
  /** A pool on the shared server, for checks; open between before() and after(). */
  admin(): pg.Pool;
}

/**
 * A fresh schema for one describe block, created in before() and dropped in after(), so suites
 * that reach the store through a URL (the CLI, `openStore`) share the database safely.
 */
export function tempSchema(
  hooks: { before: (fn: () => Promise<void>) => unknown; after: (fn: () => Promise<void>) => unknown },
  prefix: string,
): TempSchema {
  const name = `${prefix}_${Math.random().toString(36).slice(2, 10)}`;
  let admin: pg.Pool | undefined;
  hooks.before(async () => {
    admin = await postgresPool();
    await admin.query(`CREATE SCHEMA "${name}"`);
  });
  hooks.after(async () => {
    await admin?.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
    await admin?.end();
  });
  return {
    name,
    url: `${POSTGRES_URL}?options=${encodeURIComponent(`-c search_path=${name}`)}`,
    admin: () => {
      if (!admin) throw new Error('tempSchema: the admin pool exists only between before() and after()');
      return admin;
    },
  };
}
