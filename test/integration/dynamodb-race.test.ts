import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { dynamodbStore } from '../../src/stores/dynamodb.js';
import { dynamoClient, freshTable, type InProcessDynalite, startDynalite } from '../support/dynalite.js';
import { runWorkers, summarize } from '../support/redis-postgres-race.js';

// The claim race on DynamoDB (dynalite in this process): 50 claims of one key in one process, and
// 4 processes × the same 10,000 keys, each acquired exactly once, no errors.
const KEYS = 10_000;
let server: InProcessDynalite;
let client: DynamoDBClient;

before(async () => {
  server = await startDynalite();
  client = dynamoClient(server.endpoint);
});
after(async () => {
  client?.destroy();
  await server?.close();
});

it('50 racing claims on one key: one winner, 49 see its in-progress record', async () => {
  const tableName = await freshTable(client, 'race-one');
  const store = dynamodbStore({ client, tableName });
  const key = `one-${Date.now()}`;

  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      store.claim({ key, fingerprint: 'fp', token: `t${i}`, leaseMs: 60_000, retentionMs: 60_000 }),
    ),
  );

  const outcomes = results.map((r) => r.outcome);
  assert.equal(outcomes.filter((o) => o === 'acquired').length, 1);
  assert.equal(outcomes.filter((o) => o === 'in_progress').length, 49);
});

it('4 processes racing on 10,000 keys: each key acquired exactly once, no errors', async () => {
  const tableName = await freshTable(client, 'race-many');

  const results = await runWorkers(
    './dynalite-race-worker.ts',
    [0, 1, 2, 3].map((seed) => [server.endpoint, tableName, String(KEYS), String(seed)]),
    // dynalite serves about 800 requests/s on one thread: the 70,000 requests take 1.5 min here.
    300_000,
  );

  const s = summarize(results, KEYS);
  console.log(`# dynamodb race: ${s.acquired} acquired (${s.perWorker}), ${s.errors.length} errors`);
  assert.deepEqual(s.errors, []);
  assert.deepEqual(
    { acquired: s.acquired, twice: s.twice, missing: s.missing },
    { acquired: KEYS, twice: 0, missing: 0 },
  );
});
