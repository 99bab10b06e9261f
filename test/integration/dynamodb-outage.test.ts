import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { withIdempotency } from '../../src/adapters/fetch.js';
import { StoreUnavailableError } from '../../src/core/errors.js';
import { createIdempotency } from '../../src/index.js';
import { createTable, dynamodbStore } from '../../src/stores/dynamodb.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { type DynaliteProcess, dynamoClient, startDynaliteProcess } from '../support/dynalite.js';
import { eventually } from '../support/redis-postgres-cases.js';

/*
 * An outage of DynamoDB: dynalite runs as a child process on a LevelDB directory and is killed by
 * its PID mid-test. Keyed requests must get 503 store-unavailable within the store timeout
 * (bound here: < 3 s) and direct store calls StoreUnavailableError; after the restart, requests
 * are served again and a result completed before the outage still replays (its item survived).
 */

const TIMEOUT_MS = 500;
const SECRET = 'dynamodb-outage-secret';

describe('dynamodb outage: dynalite killed → 503 within the timeout; restarted → served again', () => {
  let dynalite: DynaliteProcess;
  let client: DynamoDBClient;
  const tableName = `outage-${Date.now()}`;
  let executions = 0;

  before(async () => {
    dynalite = await startDynaliteProcess();
    // As the docs recommend: short SDK timeouts, few retries; the store's own timer bounds the rest.
    client = dynamoClient(dynalite.endpoint, {
      maxAttempts: 2,
      requestHandler: { connectionTimeout: 300, requestTimeout: TIMEOUT_MS },
    });
    await createTable({ client, tableName, onWarning() {} });
  });
  after(async () => {
    client?.destroy();
    await dynalite?.destroy();
  });

  it('keyed requests answer 503 while it is down, and replay and execute again after the restart', async () => {
    const store = dynamodbStore({ client, tableName, timeoutMs: TIMEOUT_MS, onWarning() {} });
    const engine = createIdempotency({
      store,
      secret: SECRET,
      principal: () => 'customer-1',
      onWarning() {},
      sweepIntervalMs: 0,
    });
    const app = await serveFetch(
      withIdempotency(async () => {
        executions++;
        return Response.json({ charge: executions }, { status: 201 });
      }, engine),
    );
    const pay = (key: string) =>
      fetch(`${app.url}/pay`, {
        method: 'POST',
        headers: { 'idempotency-key': key, 'content-type': 'application/json' },
        body: '{"amount":5}',
      });
    try {
      const first = await pay('before-outage');
      assert.equal(first.status, 201);
      const firstBody = await first.text();

      await dynalite.stop('SIGKILL');
      const started = performance.now();
      const during = await Promise.all(Array.from({ length: 5 }, (_, i) => pay(`during-${i}`)));
      const calls = await Promise.allSettled([
        store.claim({ key: 'k', fingerprint: 'fp', token: 't', leaseMs: 1_000, retentionMs: 1_000 }),
        store.get('k'),
        store.complete({
          key: 'k',
          token: 't',
          retentionMs: 1_000,
          response: { status: 200, headers: [], body: new Uint8Array() },
        }),
      ]);
      const elapsed = performance.now() - started;

      for (const response of during) {
        assert.equal(response.status, 503);
        assert.match(await response.text(), /store-unavailable/);
      }
      for (const outcome of calls) {
        assert.ok(
          outcome.status === 'rejected' && outcome.reason instanceof StoreUnavailableError,
          String(outcome),
        );
      }
      assert.ok(elapsed < 3_000, `took ${Math.round(elapsed)} ms while dynalite was down`);
      assert.equal(executions, 1, 'no handler ran without a claim');
      console.log(
        `# dynamodb outage: 5 requests answered 503 and 3 calls rejected within ${Math.round(elapsed)} ms`,
      );

      await dynalite.start();
      await eventually(
        'keyed requests to be served again',
        async () => (await pay(`after-${Math.random()}`)).status === 201,
        20_000,
      );
      const replay = await pay('before-outage');
      assert.equal(replay.status, 201);
      assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      assert.equal(await replay.text(), firstBody);
      // The keys refused during the outage were never claimed: they execute now.
      const retried = await pay('during-0');
      assert.equal(retried.headers.get('idempotent-replayed'), 'false');
    } finally {
      await app.close();
      await engine.close();
    }
  });
  it('a claim answered after the timeout (dynalite paused with SIGSTOP) is released, not left held', async () => {
    // No SDK timeout of its own here: the request waits out the pause and lands late.
    const patient = dynamoClient(dynalite.endpoint, { maxAttempts: 1 });
    const store = dynamodbStore({ client: patient, tableName, timeoutMs: TIMEOUT_MS, onWarning() {} });
    const claim = { key: 'slow', fingerprint: 'fp', token: 't-slow', leaseMs: 60_000, retentionMs: 60_000 };
    const pid = dynalite.pid() ?? 0;
    try {
      await store.get('warm-up');
      process.kill(pid, 'SIGSTOP');
      const started = performance.now();
      await assert.rejects(store.claim(claim), StoreUnavailableError);
      assert.ok(performance.now() - started < 3_000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    try {
      await eventually(
        'the late claim to be released',
        async () => (await store.get('slow'))?.state === 'released',
      );
      assert.equal((await store.claim({ ...claim, token: 't-next' })).outcome, 'acquired');
    } finally {
      patient.destroy();
    }
  });
});
