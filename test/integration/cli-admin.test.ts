import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sqliteStore } from '../../src/stores/sqlite.js';
import { runCli } from '../support/cli.js';
import { tempSchema } from '../support/postgres-service.js';

const dir = mkdtempSync(join(tmpdir(), 'idemkit-cli-admin-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const response = {
  status: 201,
  headers: [['content-type', 'application/json']] as [string, string][],
  body: Buffer.from('{}'),
};

/** Completes `count` records through the store; `ageMs` back-dates the store clock, so they expired long ago. */
async function writeRecords(path: string, count: number, ageMs: number): Promise<string[]> {
  const store = sqliteStore({ path }, { clock: () => Date.now() - ageMs });
  const keys: string[] = [];
  for (let i = 0; i < count; i++) {
    const key = randomBytes(32).toString('hex');
    const token = randomBytes(16).toString('hex');
    await store.claim({ key, fingerprint: 'v1:f', token, leaseMs: 1_000, retentionMs: 60_000 });
    await store.complete({ key, token, response, retentionMs: 60_000 });
    keys.push(key);
  }
  await store.close();
  return keys;
}

describe('idemkit purge --expired', () => {
  it('sweeps in batches until no expired record is left, and keeps live ones', async () => {
    const path = join(dir, 'sweep.db');
    await writeRecords(path, 2_345, 7 * 86_400_000);
    const [live] = await writeRecords(path, 1, 0);

    const purged = await runCli(['purge', '--expired', '--store', `sqlite:${path}`]);
    const again = await runCli(['purge', '--expired', '--store', `sqlite:${path}`]);
    const kept = await runCli(['inspect', '--store', `sqlite:${path}`, '--store-key', live as string]);

    assert.equal(purged.code, 0, purged.stderr);
    assert.equal(purged.stdout, `purged 2345 expired records from sqlite:${path}\n`);
    assert.equal(again.stdout, `purged 0 expired records from sqlite:${path}\n`);
    assert.equal(kept.code, 0);
    assert.match(kept.stdout, /^state +completed$/m);
  });

  it('reads the store from IDEMKIT_STORE', async () => {
    const path = join(dir, 'env.db');
    await writeRecords(path, 3, 7 * 86_400_000);

    const purged = await runCli(['purge', '--expired'], { IDEMKIT_STORE: `sqlite:${path}` });

    assert.equal(purged.stdout, `purged 3 expired records from sqlite:${path}\n`);
  });
});

describe('idemkit migrate', () => {
  const schema = tempSchema({ before, after }, 'idemkit_migrate');

  it('creates the PostgreSQL table (twice is fine) without needing the secret', async () => {
    const { url } = schema;

    const first = await runCli(['migrate', '--store', url]);
    const second = await runCli(['migrate'], { IDEMKIT_STORE: url });

    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^schema ready in postgres:\/\//);
    assert.equal(second.code, 0, second.stderr);
    const tables = await schema
      .admin()
      .query('SELECT table_name FROM information_schema.tables WHERE table_schema = $1', [schema.name]);
    assert.deepEqual(tables.rows, [{ table_name: 'idemkit_records' }]);
  });

  it('an unreachable server is a runtime failure (exit 1) that names the problem', async () => {
    const { code, stderr } = await runCli(['migrate', '--store', 'postgres://postgres@127.0.0.1:1/test']);

    assert.equal(code, 1);
    assert.match(stderr, /^error: .*ECONNREFUSED/);
  });

  it('on SQLite it opens the file, which creates the schema', async () => {
    const path = join(dir, 'migrate.db');

    const { code, stdout } = await runCli(['migrate', '--store', `sqlite:${path}`]);

    assert.equal(code, 0);
    assert.equal(stdout, `schema ready in sqlite:${path}\n`);
  });
});
