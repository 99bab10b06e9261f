import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import {
  IdempotencyConfigError,
  StoreMisconfiguredError,
  StoreUnavailableError,
} from '../../src/core/errors.js';
import { type SqliteDatabase, sqliteStore } from '../../src/stores/sqlite.js';
import type { ClaimRequest, StoredResponse } from '../../src/stores/types.js';
import { defineStoreContract } from '../../src/testing/store-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'idemkit-sqlite-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshPath = () => join(dir, `store-${++files}.db`);

for (const synchronous of ['FULL', 'NORMAL'] as const) {
  defineStoreContract({
    name: `sqlite (synchronous=${synchronous})`,
    describe,
    it,
    create: async () => {
      let now = 1_700_000_000_000;
      const store = sqliteStore({ path: freshPath() }, { synchronous, clock: () => now });
      return {
        store,
        clock: {
          advance: (ms: number) => {
            now += ms;
          },
        },
      };
    },
  });
}

describe('sqlite store', () => {
  const request = (key: string): ClaimRequest => ({
    key,
    fingerprint: 'fp',
    token: `token-${key}`,
    leaseMs: 60_000,
    retentionMs: 60_000,
  });
  const response: StoredResponse = { status: 201, headers: [['x-a', '1']], body: Uint8Array.of(0, 255) };

  it('a better-sqlite3 Database fits the SqliteDatabase subset', () => {
    const db = new Database(':memory:');
    const subset: SqliteDatabase = db;

    assert.equal(typeof subset.prepare, 'function');
    db.close();
  });

  it("works on the app's { database } handle and leaves it open on close()", async () => {
    const db = new Database(freshPath());
    const store = sqliteStore({ database: db });

    assert.deepEqual(await store.claim(request('a')), { outcome: 'acquired', generation: 1 });
    await store.close();

    assert.equal(db.open, true);
    assert.deepEqual(db.prepare('SELECT count(*) AS n FROM idemkit_records').get(), { n: 1 });
    db.close();
  });

  it("changes the { database } handle's synchronous and busy_timeout only when asked", async () => {
    const untouched = new Database(freshPath(), { timeout: 5_000 });
    untouched.pragma('synchronous = NORMAL');
    const asked = new Database(freshPath());
    const stores = [
      sqliteStore({ database: untouched }),
      sqliteStore({ database: asked }, { synchronous: 'NORMAL', busyTimeoutMs: 20 }),
    ];

    for (const store of stores) await store.check?.();

    assert.equal(untouched.pragma('synchronous', { simple: true }), 1);
    assert.equal(untouched.pragma('busy_timeout', { simple: true }), 5_000);
    assert.equal(asked.pragma('synchronous', { simple: true }), 1);
    assert.equal(asked.pragma('busy_timeout', { simple: true }), 20);
    assert.equal(asked.pragma('journal_mode', { simple: true }), 'wal');
    for (const store of stores) await store.close();
    untouched.close();
    asked.close();
  });

  it('calls after close() fail with StoreUnavailableError', async () => {
    const store = sqliteStore({ path: freshPath() });
    await store.claim(request('a'));

    await store.close();

    await assert.rejects(store.get('a'), StoreUnavailableError);
    await assert.rejects(store.claim(request('b')), StoreUnavailableError);
  });

  it('a file that cannot be opened fails calls with StoreUnavailableError', async () => {
    const store = sqliteStore({ path: join(dir, 'missing-dir', '\0bad.db') });

    await assert.rejects(store.claim(request('a')), StoreUnavailableError);
    await store.close();
  });

  it('a completed response survives reopening the file', async () => {
    const path = freshPath();
    const first = sqliteStore({ path });
    await first.claim(request('a'));
    await first.complete({ key: 'a', token: 'token-a', response, retentionMs: 60_000 });
    await first.close();

    const second = sqliteStore({ path });
    const result = await second.claim({ ...request('a'), token: 'another' });

    assert.equal(result.outcome, 'completed');
    assert.deepEqual(result.outcome === 'completed' && result.record.response, response);
    await second.close();
  });

  it('check() refuses a database that cannot use WAL (:memory:)', async () => {
    const db = new Database(':memory:');
    const store = sqliteStore({ database: db });

    await assert.rejects(store.check?.() ?? Promise.resolve(), StoreMisconfiguredError);
    await store.close();
    db.close();
  });

  it('check() refuses synchronous=OFF', async () => {
    const db = new Database(freshPath());
    db.pragma('synchronous = OFF');
    const store = sqliteStore({ database: db });

    await assert.rejects(store.check?.() ?? Promise.resolve(), /synchronous is OFF/);
    await store.close();
    db.close();
  });

  it('two stores on one file share defaultSecret()', async () => {
    const path = freshPath();
    const [a, b] = [sqliteStore({ path }), sqliteStore({ path })];

    const secrets = await Promise.all([a.defaultSecret?.(), b.defaultSecret?.()]);

    assert.ok(secrets[0] && secrets[0].length >= 32);
    assert.equal(secrets[1], secrets[0]);
    await Promise.all([a.close(), b.close()]);
  });

  it('stores with different tables in one file do not see each other', async () => {
    const path = freshPath();
    const [a, b] = [sqliteStore({ path }), sqliteStore({ path }, { table: 'other_records' })];

    await a.claim(request('k'));

    assert.deepEqual(await b.claim(request('k')), { outcome: 'acquired', generation: 1 });
    await Promise.all([a.close(), b.close()]);
  });

  it('rejects unsafe options with IdempotencyConfigError', () => {
    const path = freshPath();

    assert.throws(() => sqliteStore({ path }, { table: 'x; DROP TABLE y' }), IdempotencyConfigError);
    assert.throws(() => sqliteStore({ path }, { timeoutMs: 0 }), IdempotencyConfigError);
    assert.throws(() => sqliteStore({ path }, { synchronous: 'OFF' as 'FULL' }), IdempotencyConfigError);
    assert.throws(() => sqliteStore({ database: {} as SqliteDatabase }), IdempotencyConfigError);
  });

  it('truncates the WAL periodically (checkpointIntervalMs)', async () => {
    const path = freshPath();
    const store = sqliteStore({ path }, { checkpointIntervalMs: 20 });
    for (let i = 0; i < 50; i++) await store.claim(request(`k${i}`));
    const grown = statSync(`${path}-wal`).size;

    const deadline = performance.now() + 5_000;
    while (statSync(`${path}-wal`).size > 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }

    assert.ok(grown > 0);
    assert.equal(statSync(`${path}-wal`).size, 0);
    await store.close();
  });
});
