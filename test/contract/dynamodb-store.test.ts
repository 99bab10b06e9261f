import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import {
  IdempotencyConfigError,
  StoreMisconfiguredError,
  StoreUnavailableError,
} from '../../src/core/errors.js';
import { createTable, type DynamoDBClientLike, dynamodbStore } from '../../src/stores/dynamodb.js';
import { defineStoreContract } from '../../src/testing/store-contract.js';
import { dynamoClient, freshTable, type InProcessDynalite, startDynalite } from '../support/dynalite.js';
import { defineNetworkedStoreCases } from '../support/redis-postgres-cases.js';

// dynalite in this process, one table for the file (every case uses random keys).
let server: InProcessDynalite;
let client: DynamoDBClient;
let tableName: string;
/** The client as the store sees it (send of a union of commands). */
const inner = (): DynamoDBClientLike => client;

before(async () => {
  server = await startDynalite();
  client = dynamoClient(server.endpoint);
  tableName = await freshTable(client, 'contract');
});
after(async () => {
  client?.destroy();
  await server?.close();
});

/** An injected clock, shared by the store and the suite: expiry cases run without waiting. */
function manualClock() {
  let now = Date.now();
  return {
    read: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

// The skew margin is 0 here so the suite's clock steps land exactly on the deadlines; the
// networked cases below run on the real clock with the default margin.
defineStoreContract({
  name: 'dynamodb (dynalite, injected clock)',
  describe,
  it,
  capabilities: { expiresByTtl: true },
  create: async () => {
    const clock = manualClock();
    return {
      store: dynamodbStore({ client, tableName, clock: clock.read, clockSkewMs: 0 }),
      clock: { advance: clock.advance },
    };
  },
  modelRuns: 50,
});

defineStoreContract({
  name: 'dynamodb (dynalite, real clock)',
  describe,
  it,
  capabilities: { expiresByTtl: true },
  create: async () => ({ store: dynamodbStore({ client, tableName, clockSkewMs: 20 }) }),
  modelRuns: 20,
});

defineNetworkedStoreCases({
  name: 'dynamodb (dynalite)',
  expiresByTtl: true,
  create: async () => ({ store: dynamodbStore({ client, tableName }) }),
});

const RESPONSE = { status: 200, headers: [] as [string, string][], body: new Uint8Array() };
const claim = (key: string, token = 't1', fingerprint = 'fp') => ({
  key,
  fingerprint,
  token,
  leaseMs: 60_000,
  retentionMs: 60_000,
});
let counter = 0;
const key = (what: string) => `${what}-${process.pid}-${Date.now()}-${counter++}`;

/** Counts the commands sent through it, by class name. */
function countingClient(inner: DynamoDBClientLike) {
  const sent: string[] = [];
  const wrapped: DynamoDBClientLike = {
    send(command) {
      sent.push(command.constructor.name);
      return inner.send(command);
    },
  };
  return { client: wrapped, sent };
}

describe('dynamodb store', () => {
  it('keeps one item per record under id, with the TTL attribute in seconds at expiresAt + the skew margin', async () => {
    const store = dynamodbStore({ client, tableName, clockSkewMs: 1_000 });
    const k = key('layout');
    await store.claim(claim(k));
    const record = await store.get(k);

    const { Item } = await client.send(new GetItemCommand({ TableName: tableName, Key: { id: { S: k } } }));

    assert.ok(record && Item);
    assert.deepEqual(Object.keys(Item).sort(), [
      'createdAt',
      'expiresAt',
      'fingerprint',
      'generation',
      'id',
      'leaseUntil',
      'owner',
      'state',
      'ttl',
    ]);
    assert.equal(Item.ttl?.N, String(Math.ceil((record.expiresAt + 1_000) / 1000)));
    assert.equal(Item.state?.S, 'in_progress');
  });

  it('a lapsed lease is taken over only once it is clockSkewMs in the past', async () => {
    let now = Date.now();
    const store = dynamodbStore({ client, tableName, clock: () => now, clockSkewMs: 500 });
    const k = key('skew');
    await store.claim({ ...claim(k, 'a'), leaseMs: 1_000 });

    now += 1_000;
    const early = await store.claim(claim(k, 'b'));
    now += 499;
    const stillEarly = await store.claim(claim(k, 'c'));
    now += 1;
    const taken = await store.claim(claim(k, 'd'));

    assert.equal(early.outcome, 'in_progress');
    assert.equal(stillEarly.outcome, 'in_progress');
    assert.deepEqual(taken, { outcome: 'acquired', generation: 2, takeover: true });
    assert.equal(await store.complete({ key: k, token: 'a', response: RESPONSE, retentionMs: 1_000 }), false);
  });

  it('a response above the item limit is kept without its body (replay: result-unavailable), never failing the completion', async () => {
    const store = dynamodbStore({ client, tableName });
    const k = key('large');
    const body = new Uint8Array(500 * 1024).fill(7);
    await store.claim(claim(k));

    const stored = await store.complete({
      key: k,
      token: 't1',
      response: { status: 201, headers: [['content-type', 'application/octet-stream']], body },
      retentionMs: 60_000,
    });

    assert.equal(stored, true);
    const replay = await store.claim(claim(k, 't2'));
    assert.equal(replay.outcome, 'completed');
    const response = replay.outcome === 'completed' ? replay.record.response : undefined;
    assert.deepEqual(response, {
      status: 201,
      headers: [['content-type', 'application/octet-stream']],
      body: new Uint8Array(0),
      bodyOmitted: true,
      bodySha256: createHash('sha256').update(body).digest('hex'),
    });
  });

  it('a response just under the item limit is kept whole', async () => {
    const store = dynamodbStore({ client, tableName });
    const k = key('fits');
    const body = new Uint8Array(390 * 1024).fill(9);
    await store.claim(claim(k));

    assert.equal(
      await store.complete({ key: k, token: 't1', response: { ...RESPONSE, body }, retentionMs: 60_000 }),
      true,
    );
    const record = await store.get(k);
    assert.equal(record?.response?.body.byteLength, body.byteLength);
    assert.equal(record?.response?.bodyOmitted, undefined);
  });

  it('a write the SDK retried after it landed is recognised: the claim is acquired, the completion true', async () => {
    // Sends every write twice, as the SDK does when the first answer is lost on the way back.
    const twice: DynamoDBClientLike = {
      async send(command) {
        const name = command.constructor.name;
        if (name !== 'PutItemCommand' && name !== 'UpdateItemCommand') return inner().send(command);
        await inner().send(command);
        return inner().send(command);
      },
    };
    const store = dynamodbStore({ client: twice, tableName });
    const k = key('retried');

    assert.deepEqual(await store.claim(claim(k)), { outcome: 'acquired', generation: 1 });
    assert.equal(
      await store.complete({ key: k, token: 't1', response: RESPONSE, retentionMs: 60_000 }),
      true,
    );
    assert.equal((await store.get(k))?.state, 'completed');
    // Someone else's token is still refused.
    assert.equal(await store.release({ key: k, token: 't2', retentionMs: 60_000 }), false);
  });

  it('uses the item a failed condition returns (ALL_OLD) and reads only when it is absent', async () => {
    const k = key('all-old');
    await dynamodbStore({ client, tableName }).claim(claim(k));
    // dynalite leaves ReturnValuesOnConditionCheckFailure out: the plain client needs a GetItem.
    const plain = countingClient(inner());
    const loser = await dynamodbStore({ client: plain.client, tableName }).claim(claim(k, 't2'));
    // DynamoDB returns the item on the exception: play it, and no GetItem is sent.
    const withItem = countingClient({
      async send(command) {
        try {
          return await inner().send(command);
        } catch (error) {
          const read = await client.send(
            new GetItemCommand({ TableName: tableName, Key: { id: { S: k } }, ConsistentRead: true }),
          );
          throw Object.assign(error as Error, { Item: read.Item });
        }
      },
    });
    const loserToo = await dynamodbStore({ client: withItem.client, tableName }).claim(claim(k, 't3'));

    assert.equal(loser.outcome, 'in_progress');
    assert.deepEqual(loserToo, loser);
    assert.deepEqual(plain.sent, ['PutItemCommand', 'GetItemCommand']);
    assert.deepEqual(withItem.sent, ['PutItemCommand']);
  });

  it('check() accepts the table, warns that TTL is off on dynalite, refuses a missing or mis-keyed table', async () => {
    const warnings: string[] = [];
    await dynamodbStore({ client, tableName, onWarning: (m) => void warnings.push(m) }).check?.();
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /TTL on attribute "ttl" is not enabled/);

    const missing = dynamodbStore({ client, tableName: 'idemkit-missing-table' });
    await assert.rejects(
      missing.check?.() ?? Promise.resolve(),
      (e: unknown) => e instanceof StoreMisconfiguredError && /idemkit migrate/.test(e.message),
    );
    await assert.rejects(missing.claim(claim('k')), StoreMisconfiguredError);
  });

  it('createTable() is safe to run again and from several callers at once', async () => {
    const name = `again-${Date.now()}`;
    const created = await Promise.all(
      [1, 2, 3].map(() => createTable({ client, tableName: name, onWarning() {} })),
    );

    assert.equal(created.filter(Boolean).length, 1);
    assert.equal(await createTable({ client, tableName: name, onWarning() {} }), false);
    const store = dynamodbStore({ client, tableName: name });
    await store.check?.();
    assert.equal((await store.claim(claim('k'))).outcome, 'acquired');
  });

  it('a store call on an endpoint that does not answer rejects with StoreUnavailableError within timeoutMs', async () => {
    const silent = dynamoClient('http://127.0.0.1:9', { maxAttempts: 1 });
    const store = dynamodbStore({ client: silent, tableName, timeoutMs: 300 });
    try {
      await assert.rejects(store.claim(claim('k')), StoreUnavailableError);
      await assert.rejects(store.get('k'), StoreUnavailableError);
    } finally {
      silent.destroy();
    }
  });

  it('refuses a client of unknown shape, a bad table name and bad numbers up front', () => {
    assert.throws(
      () => dynamodbStore({ client: {} as DynamoDBClientLike, tableName }),
      IdempotencyConfigError,
    );
    assert.throws(() => dynamodbStore({ client, tableName: 'a b' }), IdempotencyConfigError);
    assert.throws(() => dynamodbStore({ client, tableName, clockSkewMs: -1 }), IdempotencyConfigError);
    assert.throws(() => dynamodbStore({ client, tableName, timeoutMs: 0 }), IdempotencyConfigError);
  });
});
