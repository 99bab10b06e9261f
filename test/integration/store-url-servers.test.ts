import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../../src/gateway/store-url.js';
import type { IdempotencyStore } from '../../src/stores/types.js';
import { tempSchema } from '../support/postgres-service.js';
import { type PrivateCluster, startPrivateCluster } from '../support/redis-cluster.js';
import { freePort, type PrivateRedis, startPrivateRedis } from '../support/redis-server.js';
import { REDIS_URL } from '../support/redis-service.js';

/*
 * openStore against real servers (conventions §7.4): the drivers it loads, the connections it
 * makes and ends, and a gateway that starts while Redis is still down.
 */

const SECRET = randomBytes(32).toString('base64url');
const key = () => randomBytes(32).toString('hex');
const claim = (store: IdempotencyStore, k = key()) =>
  store.claim({
    key: k,
    fingerprint: 'v1:f',
    token: randomBytes(16).toString('hex'),
    leaseMs: 10_000,
    retentionMs: 60_000,
  });

async function eventually<T>(probe: () => Promise<T>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await probe();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe('openStore on PostgreSQL', () => {
  // The schema through search_path: migrate() and the store use the connection's default.
  const schema = tempSchema({ before, after }, 'idemkit_cli');
  const { url } = schema;

  it('migrates, claims, passes check(), and ends the pool it made on close', async () => {
    const opened = await openStore(url, { secret: SECRET });
    await opened.migrate?.();
    await opened.migrate?.(); // idempotent

    const result = await claim(opened.store);
    await opened.store.check?.();
    await opened.close();

    assert.equal(result.outcome, 'acquired');
    assert.equal(opened.secret, SECRET);
    const tables = await schema
      .admin()
      .query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1`, [schema.name]);
    assert.deepEqual(tables.rows, [{ table_name: 'idemkit_records' }]);
    await assert.rejects(opened.store.get(key())); // the pool is ended
  });

  it('opens while the server is unreachable; calls fail within the connect timeout', async () => {
    const opened = await openStore('postgres://postgres@127.0.0.1:1/test', {
      secret: SECRET,
      connectTimeoutMs: 300,
    });
    const started = Date.now();

    await assert.rejects(opened.store.get(key()));
    await opened.close();

    assert.ok(Date.now() - started < 3_000);
  });
});

for (const client of ['node-redis', 'ioredis'] as const) {
  describe(`openStore on Redis (${client})`, () => {
    it('claims and reads back on the shared server', async () => {
      const k = key();
      const opened = await openStore(`${REDIS_URL}?client=${client}`, { secret: SECRET });

      const first = await claim(opened.store, k);
      const second = await claim(opened.store, k);
      await opened.store.delete(k);
      await opened.close();

      assert.equal(first.outcome, 'acquired');
      assert.equal(second.outcome, 'in_progress');
    });

    let later: PrivateRedis | undefined;
    after(() => later?.destroy());

    it('starts while Redis is down, fails fast meanwhile, and recovers when it comes up', async () => {
      const port = await freePort();
      const warnings: string[] = [];
      const logger = {
        info() {},
        debug() {},
        error() {},
        warn: (_: object, m?: string) => warnings.push(m ?? ''),
      };
      const opened = await openStore(`redis://127.0.0.1:${port}?client=${client}`, {
        secret: SECRET,
        logger,
        connectTimeoutMs: 300,
      });

      const started = Date.now();
      await assert.rejects(claim(opened.store));
      const failedAfter = Date.now() - started;
      later = await startPrivateRedis([], port);
      const recovered = await eventually(() => claim(opened.store), 10_000);
      await opened.close();

      assert.ok(failedAfter < 1_000, `a claim while down took ${failedAfter} ms`);
      assert.match(warnings.join('\n'), /redis is not reachable yet; keyed requests get 503 until it is/);
      assert.equal(recovered.outcome, 'acquired');
    });
  });
}

describe('openStore on a Redis Cluster', () => {
  let cluster: PrivateCluster;
  before(async () => {
    cluster = await startPrivateCluster();
  });
  after(() => cluster?.destroy());

  for (const client of ['node-redis', 'ioredis'] as const) {
    it(`redis-cluster:// with ${client} claims keys on every primary`, async () => {
      const nodes = cluster.ports.map((p) => `127.0.0.1:${p}`).join(',');
      const opened = await openStore(`redis-cluster://${nodes}?client=${client}`, { secret: SECRET });

      const outcomes = await Promise.all(Array.from({ length: 30 }, () => claim(opened.store)));
      await opened.close();

      assert.deepEqual(new Set(outcomes.map((o) => o.outcome)), new Set(['acquired']));
    });
  }

  it('an unreachable cluster stops startup with what to do', async () => {
    const port = await freePort();

    await assert.rejects(
      openStore(`redis-cluster://127.0.0.1:${port}`, { secret: SECRET, connectTimeoutMs: 500 }),
      {
        name: 'ConfigError',
        message: new RegExp(`cannot reach the Redis Cluster at 127.0.0.1:${port}; start it or fix --store`),
      },
    );
  });
});
