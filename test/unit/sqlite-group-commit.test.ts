import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { StoreUnavailableError } from '../../src/core/errors.js';
import { type SqliteDatabase, sqliteStore } from '../../src/stores/sqlite.js';
import type { ClaimRequest, StoredResponse } from '../../src/stores/types.js';

/*
 * Group commit: writes issued together share one transaction (one fsync at synchronous=FULL),
 * and every caller still gets what it would have got alone, only after its COMMIT returned.
 * The store runs on a real file through a thin wrapper of a better-sqlite3 handle that records
 * which statements ran (and can make one fail), so transactions are counted, not timed.
 */

const dir = mkdtempSync(join(tmpdir(), 'idemkit-sqlite-batch-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshPath = () => join(dir, `batch-${++files}.db`);

const request = (key: string, token = `token-${key}`): ClaimRequest => ({
  key,
  fingerprint: 'fp',
  token,
  leaseMs: 60_000,
  retentionMs: 60_000,
});
const response: StoredResponse = { status: 201, headers: [['x-a', '1']], body: Uint8Array.of(1, 2) };

interface Spy {
  handle: SqliteDatabase;
  /** Every statement run, in order, by its first word (`COMMIT`, `INSERT`, `UPDATE`, …). */
  log: string[];
  commits: () => number;
  /** Makes the next runs of statements starting with `prefix` throw `error` (until cleared). */
  failOn: (prefix: string | undefined, error?: Error) => void;
}

function spyOn(db: Database.Database): Spy {
  const log: string[] = [];
  let failing: { prefix: string; error: Error } | undefined;
  const record = (sql: string) => {
    const text = sql.trim();
    if (failing && text.startsWith(failing.prefix)) throw failing.error;
    log.push(text.split(/\s+/, 1)[0] as string);
  };
  const handle = {
    prepare(sql: string) {
      const statement = db.prepare(sql);
      return {
        run: (...params: unknown[]) => {
          record(sql);
          const result = statement.run(...params);
          if (sql.trim() === 'COMMIT') log.push('COMMIT returned');
          return result;
        },
        get: (...params: unknown[]) => {
          record(sql);
          return statement.get(...params);
        },
      };
    },
    exec: (sql: string) => db.exec(sql),
    get inTransaction() {
      return db.inTransaction;
    },
  };
  return {
    handle,
    log,
    commits: () => log.filter((entry) => entry === 'COMMIT returned').length,
    failOn(prefix, error) {
      failing = prefix === undefined || error === undefined ? undefined : { prefix, error };
    },
  };
}

const busy = () => Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });

function rowState(path: string, key: string): string | undefined {
  const reader = new Database(path, { readonly: true });
  try {
    const row = reader.prepare('SELECT state FROM idemkit_records WHERE key = ?').get(key) as
      | { state: string }
      | undefined;
    return row?.state;
  } finally {
    reader.close();
  }
}

async function opened(options: { timeoutMs?: number; busyTimeoutMs?: number } = {}) {
  const path = freshPath();
  const db = new Database(path);
  const spy = spyOn(db);
  const store = sqliteStore({ database: spy.handle }, { synchronous: 'FULL', ...options });
  await store.check?.();
  return {
    path,
    spy,
    store,
    async close() {
      await store.close();
      db.close();
    },
  };
}

describe('sqlite group commit', () => {
  it('concurrent claims of distinct keys commit in fewer transactions than claims', async () => {
    const { path, spy, store, close } = await opened();
    const before = spy.commits();
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);

    const results = await Promise.all(keys.map((key) => store.claim(request(key))));

    for (const result of results) assert.deepEqual(result, { outcome: 'acquired', generation: 1 });
    const commits = spy.commits() - before;
    assert.ok(commits >= 1 && commits < keys.length, `${commits} transactions for ${keys.length} claims`);
    for (const key of keys) assert.equal(rowState(path, key), 'in_progress');
    await close();
  });

  it('claims of one key in one batch: the first acquires, the other sees in_progress', async () => {
    const { spy, store, close } = await opened();
    const before = spy.commits();

    const [first, second] = await Promise.all([
      store.claim(request('same', 'token-1')),
      store.claim(request('same', 'token-2')),
    ]);

    assert.equal(spy.commits() - before, 1, 'both claims shared one transaction');
    assert.deepEqual(first, { outcome: 'acquired', generation: 1 });
    assert.equal(second.outcome, 'in_progress');
    assert.equal(second.outcome === 'in_progress' && second.record.generation, 1);
    // The winner is the one that owns the key: its completion lands, the loser's is refused.
    const [won, refused] = await Promise.all([
      store.complete({ key: 'same', token: 'token-1', response, retentionMs: 60_000 }),
      store.complete({ key: 'same', token: 'token-2', response, retentionMs: 60_000 }),
    ]);
    assert.deepEqual([won, refused], [true, false]);
    await close();
  });

  it('a batch that stays busy rejects every member and writes none of them', async () => {
    const { path, spy, store, close } = await opened({ timeoutMs: 100 });
    await store.claim(request('held'));
    const commitsBefore = spy.commits();
    const logBefore = spy.log.length;
    // Every member runs in the transaction, then its COMMIT finds the database locked (as it can
    // in rollback-journal mode while another process reads). Busy at the COMMIT, not at one
    // member's statement: a member whose deadline passes first would leave the batch, and the
    // rest would then commit without it.
    spy.failOn('COMMIT', busy());

    const outcomes = await Promise.allSettled([
      store.claim(request('a')),
      store.claim(request('b')),
      store.complete({ key: 'held', token: 'token-held', response, retentionMs: 60_000 }),
    ]);
    spy.failOn(undefined);

    for (const outcome of outcomes) {
      assert.equal(outcome.status, 'rejected');
      assert.ok(outcome.status === 'rejected' && outcome.reason instanceof StoreUnavailableError);
    }
    assert.equal(spy.commits(), commitsBefore);
    // The members' writes ran (two claims' upserts, the completion's update; in whatever order
    // they joined the batch) and were rolled back.
    const attempt = spy.log
      .slice(logBefore, spy.log.indexOf('ROLLBACK', logBefore) + 1)
      .filter((word) => word !== 'SELECT');
    assert.equal(attempt[0], 'BEGIN');
    assert.equal(attempt.at(-1), 'ROLLBACK');
    assert.deepEqual(attempt.slice(1, -1).sort(), ['INSERT', 'INSERT', 'UPDATE']);
    assert.equal(rowState(path, 'a'), undefined);
    assert.equal(rowState(path, 'b'), undefined);
    assert.equal(rowState(path, 'held'), 'in_progress');
    // Nothing is left open: the next writes commit.
    assert.deepEqual(await store.claim(request('a')), { outcome: 'acquired', generation: 1 });
    await close();
  });

  it("a member's own failure rejects that member only; the others commit", async () => {
    const { path, spy, store, close } = await opened();
    await store.claim(request('held'));
    spy.failOn('UPDATE', Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' }));

    const [a, completion, b] = await Promise.allSettled([
      store.claim(request('a')),
      store.complete({ key: 'held', token: 'token-held', response, retentionMs: 60_000 }),
      store.claim(request('b')),
    ]);
    spy.failOn(undefined);

    assert.deepEqual(a, { status: 'fulfilled', value: { outcome: 'acquired', generation: 1 } });
    assert.deepEqual(b, { status: 'fulfilled', value: { outcome: 'acquired', generation: 1 } });
    assert.equal(completion.status, 'rejected');
    assert.ok(completion.status === 'rejected' && completion.reason instanceof StoreUnavailableError);
    assert.equal(rowState(path, 'a'), 'in_progress');
    assert.equal(rowState(path, 'held'), 'in_progress');
    await close();
  });

  it('a held write lock: the batch waits asynchronously, then commits with the writes that came meanwhile', async () => {
    // A short SQLite wait per attempt: better-sqlite3's default (5 s) would block the event loop.
    const { path, spy, store, close } = await opened({ timeoutMs: 5_000, busyTimeoutMs: 5 });
    const other = new Database(path, { timeout: 0 });
    other.exec('BEGIN IMMEDIATE');
    const first = Promise.all([store.claim(request('a')), store.claim(request('b'))]);
    await new Promise((resolve) => setTimeout(resolve, 60));
    const late = store.claim(request('c'));
    await new Promise((resolve) => setTimeout(resolve, 60));
    const commitsBefore = spy.commits();

    other.exec('COMMIT');
    const results = [...(await first), await late];

    for (const result of results) assert.deepEqual(result, { outcome: 'acquired', generation: 1 });
    assert.equal(spy.commits() - commitsBefore, 1, 'the late claim joined the waiting batch');
    other.close();
    await close();
  });

  it('settles each write only after its COMMIT returned, when other connections see it', async () => {
    const { path, spy, store, close } = await opened();
    const seen: { key: string; logLength: number; state: string | undefined }[] = [];
    const track = (key: string, call: Promise<unknown>) =>
      call.then(() => seen.push({ key, logLength: spy.log.length, state: rowState(path, key) }));

    await Promise.all([
      track('a', store.claim(request('a'))),
      track('b', store.claim(request('b'))),
      track('c', store.claim(request('c'))),
    ]);
    await Promise.all([
      track('a', store.complete({ key: 'a', token: 'token-a', response, retentionMs: 60_000 })),
      track('b', store.release({ key: 'b', token: 'token-b', retentionMs: 60_000 })),
    ]);

    assert.equal(seen.length, 5);
    for (const { key, logLength } of seen) {
      const committed = spy.log.slice(0, logLength).lastIndexOf('COMMIT returned');
      const written = spy.log.slice(0, logLength).lastIndexOf('BEGIN');
      assert.ok(committed > written, `${key} settled before its COMMIT returned`);
    }
    assert.deepEqual(
      seen.map(({ key, state }) => `${key}:${state}`),
      ['a:in_progress', 'b:in_progress', 'c:in_progress', 'a:completed', 'b:released'],
    );
    await close();
  });
});
