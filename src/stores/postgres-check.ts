import type { Row } from './postgres-rows.js';
import type { IsolationLevel } from './postgres-transaction.js';

/*
 * Startup check of the settings transactional mode depends on (docs/guarantees.md, F12).
 * Claims bound their own lock wait (`lockTimeoutMs`), but three things are the server's:
 *   - lock_timeout: a handler statement (or the completion) waiting on a row lock the app holds
 *     elsewhere waits until the client's query timeout, holding a pool connection;
 *   - idle_in_transaction_session_timeout: a host that dies or is cut off between the completion
 *     and COMMIT (no FIN reaches the server) keeps its transaction, and with it the record's row
 *     lock, until TCP keepalive notices: 2 h with OS defaults. Duplicates get 409 meanwhile and
 *     the retry cannot take over even after the lease;
 *   - default_transaction_isolation above READ COMMITTED: the completion CAS of a handler running
 *     longer than a third of the lease meets its own heartbeat's row version and fails (40001).
 * The values are those of the pool's connections (server default, ALTER ROLE / DATABASE … SET,
 * or the pool's `options`), which is what transactions run with.
 *
 * Whether the store is used transactionally is the engine's option, not the store's: `check()`
 * reads the settings, and the warning goes out once both the settings are unsafe and a
 * transaction was begun (whichever is seen last), so non-transactional users are never nagged.
 */

const TIMEOUTS = {
  lock_timeout: "ALTER ROLE <app> SET lock_timeout = '2s'",
  idle_in_transaction_session_timeout:
    "ALTER ROLE <app> SET idle_in_transaction_session_timeout = '10s' (longer than the longest pause between your handler's statements; lower tcp_keepalives_idle too)",
} as const;

export interface SettingsWarner {
  /** Called with the probe's row after every successful `check()`. */
  checked(row: Row | undefined): void;
  /** Called when `beginTransaction()` runs. */
  transactionBegun(): void;
}

export function settingsWarner(
  onWarning: (message: string) => void,
  isolationLevel: IsolationLevel | undefined,
): SettingsWarner {
  let problems: string[] | undefined;
  let transactional = false;
  let warned = false;

  function unsafe(row: Row): string[] {
    const off = (Object.keys(TIMEOUTS) as (keyof typeof TIMEOUTS)[]).filter(
      (name) => String(row[name]) === '0',
    );
    const found = off.length
      ? [
          `${off.map((name) => `${name} is 0 (no limit)`).join(' and ')}, so an open transaction can hold a record (and a pool connection) far longer than its lease; set, e.g.: ${off.map((name) => TIMEOUTS[name]).join('; ')}`,
        ]
      : [];
    const level = isolationLevel ?? String(row.default_transaction_isolation);
    if (level !== 'read committed') {
      found.push(
        `transactions run at ${level}, where a handler running longer than a third of leaseMs fails its COMMIT against its own heartbeat (503, nothing applied); pass postgresStore({ isolationLevel: 'read committed' })`,
      );
    }
    return found;
  }

  function maybeWarn(): void {
    if (warned || !transactional || problems === undefined || problems.length === 0) return;
    warned = true;
    onWarning(`idemkit postgres (transactional mode): ${problems.join('. Also, ')}`);
  }

  return {
    checked(row) {
      if (row === undefined) return;
      problems = unsafe(row);
      maybeWarn();
    },
    transactionBegun() {
      if (transactional) return;
      transactional = true;
      maybeWarn();
    },
  };
}
