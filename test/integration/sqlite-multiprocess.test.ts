import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { StoreUnavailableError } from '../../src/core/errors.js';
import { sqliteStore } from '../../src/stores/sqlite.js';

/*
 * T38-style race (docs/guarantees.md F13): several processes claim the same keys in one SQLite file.
 * This file is also the child program: forked with IDEMKIT_SQLITE_CHILD set, it registers no
 * tests and runs the worker below.
 */

const PROCESSES = 4;
const KEYS = 10_000;
/** Claims each child keeps in flight, so busy retries of one overlap the others. */
const IN_FLIGHT = 16;

/*
 * Each worker yields a timer turn between its claims, as claims from separate requests do. A
 * process running write transactions back to back in one tick starves the other processes:
 * SQLite's busy handler polls at 1–25 ms intervals rather than queueing, so it rarely sees the
 * lock free (measured unpaced at synchronous=FULL: 0.1–0.3% of claims past a 1 s budget, and
 * some past 5 s). Those claims fail closed with 503; they are never duplicates.
 */
const yieldTurn = () => new Promise((resolve) => setTimeout(resolve, 0));

type Variant = 'store' | 'broken';
type ToChild =
  | { kind: 'race'; path: string; prefix: string; variant: Variant }
  | { kind: 'secret'; path: string }
  | { kind: 'go' };
type FromChild =
  | { kind: 'ready' }
  | { kind: 'done'; acquired: string[]; errors: string[] }
  | { kind: 'secret'; secret: string };

function keyOf(prefix: string, i: number): string {
  return `${prefix}:${i}`;
}

function shuffled(count: number): number[] {
  const order = Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  return order;
}

/**
 * The negative control: the check-then-insert race several npm idempotency libraries have (read, then write in a
 * separate step), which the atomic upsert exists to prevent. Never in src.
 */
function brokenClaimer(path: string): (key: string, token: string) => Promise<boolean> {
  const db = new Database(path, { timeout: 5_000 });
  const read = db.prepare('SELECT generation FROM idemkit_records WHERE key = ?');
  const write = db.prepare(`INSERT INTO idemkit_records
      (key, state, fingerprint, owner_token, generation, lease_until, expires_at, created_at)
    VALUES (@key, 'in_progress', 'fp', @token, 1, @t, @t, @t)
    ON CONFLICT (key) DO UPDATE SET owner_token = excluded.owner_token, generation = generation + 1`);
  return async (key, token) => {
    const existing = read.get(key);
    await yieldTurn(); // other processes run meanwhile: the window the upsert closes
    if (existing) return false;
    write.run({ key, token, t: Date.now() });
    return true;
  };
}

async function runChild(): Promise<void> {
  const send = (message: FromChild) => process.send?.(message);
  const next = () => new Promise<ToChild>((resolve) => process.once('message', (m) => resolve(m as ToChild)));
  const task = await next();
  if (task.kind === 'secret') {
    const store = sqliteStore({ path: task.path });
    send({ kind: 'secret', secret: (await store.defaultSecret?.()) ?? '' });
    await store.close();
  } else if (task.kind === 'race') {
    const store = sqliteStore({ path: task.path });
    await store.check?.();
    const broken = task.variant === 'broken' ? brokenClaimer(task.path) : undefined;
    const claim = async (key: string, token: string) =>
      broken
        ? broken(key, token)
        : (await store.claim({ key, fingerprint: 'fp', token, leaseMs: 60_000, retentionMs: 60_000 }))
            .outcome === 'acquired';
    send({ kind: 'ready' });
    await next(); // the go signal: every child starts at once
    const order = shuffled(KEYS);
    const acquired: string[] = [];
    const errors: string[] = [];
    let cursor = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (cursor < order.length) {
          const key = keyOf(task.prefix, order[cursor++] as number);
          try {
            if (await claim(key, `${process.pid}:${key}`)) acquired.push(key);
          } catch (error) {
            errors.push(String(error));
          }
          await yieldTurn();
        }
      }),
    );
    send({ kind: 'done', acquired, errors });
    await store.close();
  }
  process.disconnect?.();
}

function spawnChild(): { child: ChildProcess; messages: AsyncIterator<FromChild> } {
  const env: NodeJS.ProcessEnv = { ...process.env, IDEMKIT_SQLITE_CHILD: '1' };
  delete env.NODE_TEST_CONTEXT; // the child is a plain program, not a node:test file
  const child = fork(import.meta.filename, [], { execArgv: ['--import', 'tsx'], env, stdio: 'inherit' });
  const queue: FromChild[] = [];
  const waiting: ((m: IteratorResult<FromChild>) => void)[] = [];
  child.on('message', (m) => {
    const resolve = waiting.shift();
    if (resolve) resolve({ value: m as FromChild, done: false });
    else queue.push(m as FromChild);
  });
  child.on('exit', (code) => {
    for (const resolve of waiting.splice(0)) resolve({ value: undefined, done: true });
    if (code !== 0) queue.push({ kind: 'done', acquired: [], errors: [`child exited with ${code}`] });
  });
  const messages: AsyncIterator<FromChild> = {
    next: () => {
      const m = queue.shift();
      return m ? Promise.resolve({ value: m, done: false }) : new Promise((resolve) => waiting.push(resolve));
    },
  };
  return { child, messages };
}

async function expectMessage<K extends FromChild['kind']>(
  messages: AsyncIterator<FromChild>,
  kind: K,
): Promise<Extract<FromChild, { kind: K }>> {
  const { value, done } = await messages.next();
  assert.ok(!done, `a child exited before sending ${kind}`);
  assert.equal(value.kind, kind, `expected ${kind}, got ${JSON.stringify(value).slice(0, 300)}`);
  return value as Extract<FromChild, { kind: K }>;
}

/** Starts the children, waits until all are ready, releases them together, collects results. */
async function race(path: string, prefix: string, variant: Variant) {
  const children = Array.from({ length: PROCESSES }, spawnChild);
  try {
    for (const { child } of children) child.send({ kind: 'race', path, prefix, variant } satisfies ToChild);
    for (const { messages } of children) await expectMessage(messages, 'ready');
    for (const { child } of children) child.send({ kind: 'go' } satisfies ToChild);
    return await Promise.all(children.map(({ messages }) => expectMessage(messages, 'done')));
  } finally {
    for (const { child } of children) if (child.exitCode === null) child.kill();
  }
}

if (process.env.IDEMKIT_SQLITE_CHILD) {
  await runChild();
} else {
  const dir = mkdtempSync(join(tmpdir(), 'idemkit-sqlite-race-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('sqlite store across processes', () => {
    it(`${PROCESSES} processes racing over ${KEYS} keys in one file acquire each key exactly once, with 0 errors`, async () => {
      const path = join(dir, 'race.db');

      const results = await race(path, 'race', 'store');

      const errors = results.flatMap((r) => r.errors);
      assert.deepEqual(errors.slice(0, 5), [], `${errors.length} claims failed`);
      const acquired = results.flatMap((r) => r.acquired);
      assert.equal(acquired.length, KEYS, `acquired per process: ${results.map((r) => r.acquired.length)}`);
      assert.equal(new Set(acquired).size, KEYS);
      const db = new Database(path, { readonly: true });
      const rows = db
        .prepare(`SELECT count(*) AS n, count(DISTINCT key) AS keys, max(generation) AS g FROM idemkit_records
          WHERE key LIKE 'race:%'`)
        .get();
      db.close();
      assert.deepEqual(rows, { n: KEYS, keys: KEYS, g: 1 });
    });

    it('negative control: a read-then-write claim in the same harness acquires some keys twice', async () => {
      const path = join(dir, 'broken.db');

      const results = await race(path, 'broken', 'broken');

      assert.deepEqual(results.flatMap((r) => r.errors).slice(0, 5), []);
      const acquired = results.reduce((sum, r) => sum + r.acquired.length, 0);
      assert.ok(
        acquired > KEYS,
        `the harness saw no duplicate (${acquired} acquired): it cannot detect a race`,
      );
    });

    it('two processes sharing one file agree on defaultSecret()', async () => {
      const path = join(dir, 'secret.db');
      const children = [spawnChild(), spawnChild()];

      for (const { child } of children) child.send({ kind: 'secret', path } satisfies ToChild);
      const secrets = await Promise.all(children.map(({ messages }) => expectMessage(messages, 'secret')));

      const [first, second] = secrets.map((m) => m.secret);
      assert.ok(first && first.length >= 32);
      assert.equal(second, first);
      const store = sqliteStore({ path });
      assert.equal(await store.defaultSecret?.(), first);
      await store.close();
    });
  });

  describe('sqlite store under a held write lock', () => {
    it('SQLITE_BUSY past timeoutMs becomes StoreUnavailableError while the event loop keeps turning', async () => {
      const path = join(dir, 'busy.db');
      const store = sqliteStore({ path }, { timeoutMs: 300 });
      await store.check?.();
      const locker = new Database(path);
      locker.exec('BEGIN IMMEDIATE');
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 5);
      const started = performance.now();

      try {
        await assert.rejects(
          store.claim({ key: 'k', fingerprint: 'fp', token: 't', leaseMs: 1_000, retentionMs: 1_000 }),
          (error: unknown) => error instanceof StoreUnavailableError && /locked/.test(error.message),
        );
        const elapsed = performance.now() - started;
        assert.ok(elapsed >= 300 && elapsed < 2_000, `gave up after ${elapsed.toFixed(0)} ms`);
        assert.ok(ticks > 0, `the event loop turned only ${ticks} times while the store waited`);
        // WAL: readers are not blocked by the writer, and an absent key is reported as absent.
        assert.equal(await store.get('k'), undefined);
      } finally {
        clearInterval(ticker);
        locker.exec('ROLLBACK');
        locker.close();
      }
      assert.deepEqual(
        await store.claim({ key: 'k', fingerprint: 'fp', token: 't', leaseMs: 1_000, retentionMs: 1_000 }),
        { outcome: 'acquired', generation: 1 },
      );
      await store.close();
    });

    it('a claim waiting on a lock held briefly succeeds once the lock is released', async () => {
      const path = join(dir, 'brief.db');
      const store = sqliteStore({ path });
      await store.check?.();
      const locker = new Database(path);
      locker.exec('BEGIN IMMEDIATE');
      setTimeout(() => locker.exec('COMMIT'), 150);

      const result = await store.claim({
        key: 'k',
        fingerprint: 'fp',
        token: 't',
        leaseMs: 1_000,
        retentionMs: 1_000,
      });

      assert.deepEqual(result, { outcome: 'acquired', generation: 1 });
      locker.close();
      await store.close();
    });
  });
}
