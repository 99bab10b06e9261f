import type pg from 'pg';
import type { PostgresPool, PostgresQueryConfig } from '../../src/stores/postgres.js';

/*
 * A test hook for transactional mode, outside src (docs/guarantees.md): a pool whose
 * transaction connections hold the first COMMIT until the test opens the gate. While it is held,
 * the owner's completion CAS has run and its row lock is taken: the window of F12 / T24.
 */

export interface CommitGate {
  /** Hand this to postgresStore: queries go to the real pool, transactions are gated. */
  pool: PostgresPool;
  /** Resolves when a COMMIT is being held. */
  held: Promise<void>;
  /** Lets the held COMMIT (and every later one) through. */
  open(): void;
}

export function commitGate(pool: pg.Pool): CommitGate {
  let reached = () => {};
  let release = () => {};
  const held = new Promise<void>((resolve) => {
    reached = resolve;
  });
  const opened = new Promise<void>((resolve) => {
    release = resolve;
  });
  return {
    pool: {
      query: (config: PostgresQueryConfig) => pool.query(config),
      async connect() {
        const client = await pool.connect();
        return {
          async query(config: PostgresQueryConfig) {
            if (config.text === 'COMMIT') {
              reached();
              await opened;
            }
            return client.query(config);
          },
          release: (error?: Error | boolean) => client.release(error),
        };
      },
    },
    held,
    open: release,
  };
}
