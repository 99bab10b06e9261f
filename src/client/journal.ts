import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { ClientConfigError } from './errors.js';
import type { RetryPolicy } from './policy.js';
import type { Operation } from './run.js';

/**
 * A durable record of the operations in flight, so an operation outlives its process: written
 * before the first attempt, removed when the call settles in this process (answered or failed:
 * the caller was told). A row left behind means its process died mid-operation (kill -9, a
 * crash, a power cut); the next process opening the journal resends it with the same key and
 * the same bytes, and the server's de-duplication turns that into "done once".
 *
 * What a row holds: method, URL (the key included when it travels in the query), the request
 * headers minus credentials (`authorization`, `proxy-authorization`, `cookie` and `redactHeaders`:
 * the resuming client adds its own `headers`), the body bytes as sent (they may hold personal
 * data or secrets: the file is created readable by its owner only), the policy and the key.
 * How long: until the call settles, or at most `maxAgeMs`: older rows are dropped, not resent,
 * because past the server's retention its record of the key is gone and a resend would run again.
 */
export interface JournalOptions {
  /** The SQLite file; created (mode 0600) with its folder when missing. */
  path: string;
  /**
   * Rows older than this are dropped by `resume()` instead of resent. Keep it at or below the
   * server's retention (idemkit's default is 24 h).
   * @default 86_400_000
   */
  maxAgeMs?: number;
  /** More request headers never written to the journal, e.g. `x-api-key`. @default [] */
  redactHeaders?: readonly string[];
}

export interface JournalEntry {
  id: string;
  key: string | undefined;
  method: string;
  url: string;
  headers: [string, string][];
  body: Uint8Array | undefined;
  policy: RetryPolicy;
  /** Epoch milliseconds. */
  createdAt: number;
  attempts: number;
}

export interface Journal {
  record(operation: Operation): string;
  attempted(id: string, attempts: number): void;
  settle(id: string): void;
  /** Gives a row up without settling it: the next `adoptOrphans()` (here or elsewhere) takes it. */
  release(id: string): void;
  /** Entries whose process is gone, now owned by this journal: they are this process's to finish. */
  adoptOrphans(): JournalEntry[];
  list(): JournalEntry[];
  readonly maxAgeMs: number;
  close(): void;
}

interface Row {
  id: string;
  key: string | null;
  method: string;
  url: string;
  headers: string;
  body: Uint8Array | null;
  policy: string;
  created_at: number;
  attempts: number;
  owner: string;
}

const CREDENTIALS = ['authorization', 'proxy-authorization', 'cookie'];

const SCHEMA = `
CREATE TABLE IF NOT EXISTS idemkit_client_journal (
  id TEXT PRIMARY KEY,
  key TEXT,
  method TEXT NOT NULL,
  url TEXT NOT NULL,
  headers TEXT NOT NULL,
  body BLOB,
  policy TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  owner TEXT NOT NULL
)`;

export async function openJournal(options: JournalOptions): Promise<Journal> {
  let Database: typeof import('better-sqlite3');
  try {
    ({ default: Database } = await import('better-sqlite3'));
  } catch (error) {
    throw new ClientConfigError('createClient({ journal }) needs the better-sqlite3 package', error);
  }
  mkdirSync(dirname(options.path), { recursive: true });
  closeSync(openSync(options.path, 'a', 0o600));
  const db = new Database(options.path, { timeout: 1_000 });
  db.pragma('journal_mode = WAL');
  // FULL: a row must be on disk before the request leaves, or a power cut could lose the intent.
  db.pragma('synchronous = FULL');
  db.exec(SCHEMA);
  const owner = `${process.pid}:${randomBytes(6).toString('hex')}`;
  const redact = new Set([...CREDENTIALS, ...(options.redactHeaders ?? []).map((h) => h.toLowerCase())]);
  const insert = db.prepare(
    'INSERT INTO idemkit_client_journal (id, key, method, url, headers, body, policy, created_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const count = db.prepare('UPDATE idemkit_client_journal SET attempts = ? WHERE id = ?');
  const remove = db.prepare('DELETE FROM idemkit_client_journal WHERE id = ?');
  const disown = db.prepare("UPDATE idemkit_client_journal SET owner = '' WHERE id = ?");
  const all = db.prepare('SELECT * FROM idemkit_client_journal ORDER BY created_at, id');
  const adopt = db.prepare('UPDATE idemkit_client_journal SET owner = ? WHERE id = ? AND owner = ?');

  return {
    maxAgeMs: options.maxAgeMs ?? 86_400_000,
    record(operation) {
      const id = randomUUID();
      const headers = operation.headers.filter(([name]) => !redact.has(name.toLowerCase()));
      const body = typeof operation.body === 'function' ? null : (operation.body ?? null);
      insert.run(
        id,
        operation.key ?? null,
        operation.method,
        operation.url,
        JSON.stringify(headers),
        body,
        JSON.stringify(operation.policy),
        Date.now(),
        owner,
      );
      return id;
    },
    attempted(id, attempts) {
      count.run(attempts, id);
    },
    settle(id) {
      remove.run(id);
    },
    release(id) {
      disown.run(id);
    },
    adoptOrphans() {
      const adopted: JournalEntry[] = [];
      for (const row of all.all() as Row[]) {
        if (row.owner === owner || ownerAlive(row.owner)) continue;
        // Compare-and-set on the old owner: of two processes resuming at once, one adopts each row.
        if (adopt.run(owner, row.id, row.owner).changes === 1) adopted.push(entryOf(row));
      }
      return adopted;
    },
    list: () => (all.all() as Row[]).map(entryOf),
    close: () => db.close(),
  };
}

/**
 * A row's process is alive while its PID exists (signal 0 checks without sending anything;
 * EPERM means it exists under another user). The journal is a local file, so the PID is local.
 */
function ownerAlive(owner: string): boolean {
  const pid = Number(owner.split(':')[0]);
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: unknown }).code === 'EPERM';
  }
}

function entryOf(row: Row): JournalEntry {
  return {
    id: row.id,
    key: row.key ?? undefined,
    method: row.method,
    url: row.url,
    headers: JSON.parse(row.headers) as [string, string][],
    body: row.body === null ? undefined : new Uint8Array(row.body),
    policy: JSON.parse(row.policy) as RetryPolicy,
    createdAt: row.created_at,
    attempts: row.attempts,
  };
}
