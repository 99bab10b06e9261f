import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { type PrivateCluster, startPrivateCluster } from '../support/redis-cluster.js';
import { runWorkers, summarize } from '../support/redis-postgres-race.js';
import { nodeRedisClient, REDIS_URL, randomPrefix } from '../support/redis-service.js';

// 4 processes × the same 10,000 keys: exactly 10,000 acquired, each once, 0 errors. Two workers
// use node-redis and two ioredis, on the shared Redis and on a private 3-primary Cluster.
const KEYS = 10_000;
let cluster: PrivateCluster;

before(async () => {
  (await nodeRedisClient()).destroy();
  cluster = await startPrivateCluster();
});
after(() => cluster?.destroy());

for (const setup of ['standalone', 'cluster'] as const) {
  it(`${setup}: 4 processes racing on 10,000 keys: each key acquired exactly once, no errors`, async () => {
    const prefix = randomPrefix(`race-${setup}`);
    const target = setup === 'standalone' ? REDIS_URL : cluster.ports.join(',');
    const kinds =
      setup === 'standalone' ? ['node-redis', 'ioredis'] : ['node-redis-cluster', 'ioredis-cluster'];

    const results = await runWorkers(
      './redis-race-worker.ts',
      [0, 1, 2, 3].map((seed) => [kinds[seed % 2] ?? '', target, prefix, String(KEYS), String(seed)]),
    );

    const s = summarize(results, KEYS);
    console.log(`# redis ${setup} race: ${s.acquired} acquired (${s.perWorker}), ${s.errors.length} errors`);
    assert.deepEqual(s.errors, []);
    assert.deepEqual(
      { acquired: s.acquired, twice: s.twice, missing: s.missing },
      { acquired: KEYS, twice: 0, missing: 0 },
    );
  });
}
