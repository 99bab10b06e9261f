import type { Row } from './postgres-rows.js';

/*
 * Startup check of the settings that bound an open transaction (reliability.md §6 item 7, F12).
 * Claims bound their own lock wait (`lockTimeoutMs`), but in transactional mode two waits are the
 * server's to bound:
 *   - lock_timeout: a handler statement (or the completion) waiting on a row lock the app holds
 *     elsewhere waits until the client's query timeout, holding a pool connection;
 *   - idle_in_transaction_session_timeout: a host that dies or is cut off between the completion
 *     and COMMIT (no FIN reaches the server) keeps its transaction, and with it the record's row
 *     lock, until TCP keepalive notices: 2 h with OS defaults. Duplicates get 409 meanwhile and
 *     the retry cannot take over even after the lease.
 * Both read as '0' when off. The values are those of the pool's connections (server default,
 * ALTER ROLE / DATABASE … SET, or the pool's `options`), which is what transactions run with.
 *
 * Whether the store is used transactionally is the engine's option, not the store's: `check()`
 * reads the settings, and the warning goes out once both the settings are unsafe and a
 * transaction was begun (whichever is seen last), so non-transactional users are never nagged.
 */

const SETTINGS = {
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

export function settingsWarner(onWarning: (message: string) => void): SettingsWarner {
  let unsafe: string[] | undefined;
  let transactional = false;
  let warned = false;

  function maybeWarn(): void {
    if (warned || !transactional || unsafe === undefined || unsafe.length === 0) return;
    warned = true;
    const off = unsafe.map((name) => `${name} is 0 (no limit)`).join(' and ');
    const fixes = unsafe.map((name) => SETTINGS[name as keyof typeof SETTINGS]).join('; ');
    onWarning(
      `idemkit postgres: ${off} on the pool's connections, so in transactional mode an open transaction can hold a record (and a pool connection) far longer than its lease. Set, e.g.: ${fixes}`,
    );
  }

  return {
    checked(row) {
      if (row === undefined) return;
      unsafe = Object.keys(SETTINGS).filter((name) => String(row[name]) === '0');
      maybeWarn();
    },
    transactionBegun() {
      if (transactional) return;
      transactional = true;
      maybeWarn();
    },
  };
}
