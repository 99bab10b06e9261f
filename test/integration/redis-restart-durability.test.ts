import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { redisStore } from '../../src/stores/redis.js';
import { eventually } from '../support/redis-postgres-cases.js';
import { type PrivateRedis, startPrivateRedis } from '../support/redis-server.js';
import { ioredisClient } from '../support/redis-service.js';

/*
 * docs/guarantees.md T21 (measured part) and the issue's documented data-loss case: Redis keeps
 * records in memory, so what survives a restart depends on its persistence settings, not on
 * idemkit. A lost completed record means a retry runs the handler again. The counts are printed.
 *   no persistence (the shared test server's setup) + restart   → every record is lost
 *   appendonly yes, appendfsync always + kill -9 and restart     → nothing is lost
 *   appendonly yes, appendfsync everysec + kill -9 and restart   → measured (the OS still had the
 *                                                                  writes; a power loss could drop ~1 s)
 */

const RECORDS = 1_000;
const setups = [
  { name: 'no persistence, clean restart', args: [], signal: 'SIGTERM', expectLost: RECORDS },
  {
    name: 'AOF appendfsync always, kill -9',
    args: ['--appendonly', 'yes', '--appendfsync', 'always'],
    signal: 'SIGKILL',
    expectLost: 0,
  },
  {
    name: 'AOF appendfsync everysec, kill -9',
    args: ['--appendonly', 'yes', '--appendfsync', 'everysec'],
    signal: 'SIGKILL',
    expectLost: undefined,
  },
] as const;

describe('redis restart: completed records that survive, by persistence setting', () => {
  const servers: PrivateRedis[] = [];
  after(() => Promise.all(servers.map((s) => s.destroy())));

  for (const setup of setups) {
    it(`${setup.name}: ${setup.expectLost === undefined ? 'measured' : `${setup.expectLost} of ${RECORDS} lost`}`, async () => {
      const server = await startPrivateRedis([...setup.args]);
      servers.push(server);
      const client = await ioredisClient(server.url, { maxRetriesPerRequest: 20 });
      const store = redisStore({ client });
      const keys = Array.from({ length: RECORDS }, (_, i) => `durable-${i}`);
      try {
        await Promise.all(
          keys.map(async (key) => {
            const token = `t-${key}`;
            await store.claim({ key, fingerprint: 'fp', token, leaseMs: 60_000, retentionMs: 600_000 });
            const response = { status: 201, headers: [], body: Buffer.from(key) };
            assert.equal(await store.complete({ key, token, response, retentionMs: 600_000 }), true);
          }),
        );

        await server.stop(setup.signal);
        await server.start();
        await eventually(
          'the client to reconnect',
          async () => (await client.ping().catch(() => '')) === 'PONG',
          15_000,
        );
        const survivors = (await Promise.all(keys.map((key) => store.get(key)))).filter(
          (r) => r?.state === 'completed',
        );

        const lost = RECORDS - survivors.length;
        console.log(`# redis ${setup.name}: ${lost} of ${RECORDS} acknowledged completions lost`);
        if (setup.expectLost !== undefined) assert.equal(lost, setup.expectLost);
      } finally {
        client.disconnect();
      }
    });
  }
});
