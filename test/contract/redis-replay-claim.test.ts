import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import type { IdempotencyStore, StoredRecord, StoredResponse } from '../../src/core/store.js';
import { redisStore } from '../../src/stores/redis.js';
import type { IoRedisLike, NodeRedisClientLike, RedisArgument } from '../../src/stores/redis-clients.js';
import { parseRecord, settledRecord } from '../../src/stores/redis-record.js';
import { encodeResponse } from '../../src/stores/response-codec.js';
import { ioredisClient, nodeRedisClient, randomPrefix } from '../support/redis-service.js';

/*
 * A claim is one `SET NX PX GET`. When it finds a completed or uncertain record that carries its
 * expiry (every settled record this version writes), that reply is the whole replay: one round
 * trip, no script. Anything else (a record in progress, a release tombstone, a settled record an
 * earlier version wrote without the expiry) still goes to the CLAIM script, with the same answers.
 */

let nodeRedis: Awaited<ReturnType<typeof nodeRedisClient>>;
let ioredis: Redis;
before(async () => {
  nodeRedis = await nodeRedisClient();
  ioredis = await ioredisClient();
});
after(() => {
  nodeRedis?.destroy();
  ioredis?.disconnect();
});

const RESPONSE: StoredResponse = {
  status: 201,
  headers: [
    ['content-type', 'application/json'],
    ['location', '/charges/ch_123'],
  ],
  body: Buffer.from('{"id":"ch_123"}'),
};
const FINGERPRINT = 'v1:Qm9ndXMgZmluZ2VycHJpbnQ';
const token = () => randomBytes(16).toString('hex');
const claim = (key: string, t = token()) => ({
  key,
  fingerprint: FINGERPRINT,
  token: t,
  leaseMs: 60_000,
  retentionMs: 90_000,
});

/** Each client shape, wrapped to record the commands the store sends (name, and EVALSHA's sha). */
const spies: [string, () => { client: NodeRedisClientLike | IoRedisLike; sent: string[] }][] = [
  [
    'node-redis',
    () => {
      const sent: string[] = [];
      const client: NodeRedisClientLike = {
        sendCommand(args: RedisArgument[], options) {
          sent.push(String(args[0]));
          return nodeRedis.sendCommand(args, options);
        },
      };
      return { client, sent };
    },
  ],
  [
    'ioredis',
    () => {
      const sent: string[] = [];
      const client: IoRedisLike = {
        callBuffer(command: string, args: RedisArgument[]) {
          sent.push(command);
          return ioredis.callBuffer(command, args);
        },
      };
      return { client, sent };
    },
  ],
];

/** A record as `get()` returns it, compared whole (times, response) with what a claim handed back. */
function view(record: StoredRecord | undefined) {
  assert.ok(record);
  return { ...record, response: record.response && { ...record.response, body: [...record.response.body] } };
}

async function settle(store: IdempotencyStore, key: string, how: 'complete' | 'uncertain') {
  const t = token();
  assert.equal((await store.claim(claim(key, t))).outcome, 'acquired');
  const settled =
    how === 'complete'
      ? await store.complete({ key, token: t, response: RESPONSE, retentionMs: 120_000 })
      : await store.markUncertain({ key, token: t, retentionMs: 120_000 });
  assert.equal(settled, true);
}

for (const [name, spying] of spies) {
  describe(`redis store (${name}): a claim that finds a settled record`, () => {
    it('replays a completed record in one SET NX GET, with the times and response get() reads', async () => {
      const prefix = randomPrefix('replay-claim');
      const writer = redisStore({ client: ioredis, prefix });
      await settle(writer, 'k', 'complete');
      const spy = spying();
      const store = redisStore({ client: spy.client, prefix });

      const result = await store.claim(claim('k'));
      assert.deepEqual(spy.sent, ['SET'], 'one plain command, no script');
      assert.equal(result.outcome, 'completed');
      const { record } = result as { record: StoredRecord };
      assert.deepEqual(view(record), view(await writer.get('k')));
      assert.equal(record.expiresAt, await ioredis.pexpiretime(`${prefix}{k}`));
      assert.equal(record.expiresAt - (record.completedAt ?? 0), 120_000);
      assert.deepEqual(record.response, { ...RESPONSE, body: new Uint8Array(RESPONSE.body) });
      // The claim wrote nothing: the record and its expiry are as the completion left them.
      assert.deepEqual(view(await writer.get('k')), view(record));
    });

    it('answers an uncertain record the same way (held, never re-run)', async () => {
      const prefix = randomPrefix('replay-uncertain');
      const writer = redisStore({ client: ioredis, prefix });
      await settle(writer, 'k', 'uncertain');
      const spy = spying();
      const store = redisStore({ client: spy.client, prefix });

      const result = await store.claim(claim('k'));
      assert.deepEqual(spy.sent, ['SET']);
      assert.equal(result.outcome, 'completed');
      const { record } = result as { record: StoredRecord };
      assert.equal(record.state, 'uncertain');
      assert.equal(record.response, undefined);
      assert.deepEqual(view(record), view(await writer.get('k')));
    });

    it('leaves a record in progress and a release tombstone to the CLAIM script', async () => {
      const prefix = randomPrefix('replay-script');
      const spy = spying();
      const store = redisStore({ client: spy.client, prefix });
      const owner = token();
      assert.equal((await store.claim(claim('k', owner))).outcome, 'acquired');
      spy.sent.length = 0;
      assert.equal((await store.claim(claim('k'))).outcome, 'in_progress');
      assert.deepEqual(spy.sent, ['SET', 'EVALSHA']);
      // The duplicate marked the record, so its settling publishes a wake-up.
      assert.match(String(await ioredis.get(`${prefix}{k}`)), /^2 in_progress 1 1 /);

      assert.equal(await store.release({ key: 'k', token: owner, retentionMs: 60_000 }), true);
      spy.sent.length = 0;
      assert.deepEqual(await store.claim(claim('k')), { outcome: 'acquired', generation: 2 });
      assert.deepEqual(spy.sent, ['SET', 'EVALSHA']);
    });

    it('replays a completed record an earlier version wrote (no expiry in it) through the script', async () => {
      const prefix = randomPrefix('replay-earlier');
      const rk = `${prefix}{k}`;
      // Format 2 as versions before the slot held the expiry wrote it: times relative to the
      // key's expiry, an empty slot, the TTL set with PX.
      const head = `2 completed 1 0 1700000000000 1699999990000 ~60000 ${FINGERPRINT.length} 0\n`;
      const value = Buffer.concat([Buffer.from(head + FINGERPRINT), encodeResponse(RESPONSE)]);
      await ioredis.set(rk, value, 'PX', 60_000);
      const spy = spying();
      const store = redisStore({ client: spy.client, prefix });

      const result = await store.claim(claim('k'));
      assert.deepEqual(spy.sent, ['SET', 'EVALSHA']);
      assert.equal(result.outcome, 'completed');
      const { record } = result as { record: StoredRecord };
      const expiresAt = await ioredis.pexpiretime(rk);
      assert.equal(record.expiresAt, expiresAt);
      assert.equal(record.completedAt, expiresAt - 60_000);
      assert.equal(record.createdAt, 1699999990000);
      assert.deepEqual(record.response, { ...RESPONSE, body: new Uint8Array(RESPONSE.body) });
    });
  });
}

describe('redis record: the expiry slot', () => {
  it('read as earlier versions read a record (with PEXPIRETIME, skipping the slot) it is the same record', async () => {
    const prefix = randomPrefix('replay-slot');
    const store = redisStore({ client: ioredis, prefix });
    await settle(store, 'k', 'complete');
    const rk = `${prefix}{k}`;
    const raw = (await ioredis.getBuffer(rk)) as Buffer;
    const withSlot = settledRecord('k', raw);
    assert.ok(withSlot);
    assert.deepEqual(view(withSlot), view(parseRecord('k', raw, await ioredis.pexpiretime(rk))));
  });

  it('only a settled record with its expiry answers a claim alone', () => {
    const fp = 'fp';
    const inProgress = Buffer.from(`2 in_progress 1 0 ~60000 ~120000 - 2 3\n${fp}tok`);
    const released = Buffer.from(`2 released 2 0 1700000000000 1699999990000 - 2 0\n${fp}`);
    const uncertainEarlier = Buffer.from(`2 uncertain 1 0 1700000000000 1699999990000 ~60000 2 0\n${fp}`);
    const foreign = Buffer.from('completed, but not by idemkit');
    for (const value of [inProgress, released, uncertainEarlier, foreign]) {
      assert.equal(settledRecord('k', value), undefined, value.toString());
    }
    const uncertain = Buffer.from(
      `2 uncertain 1 0 1700000000000 1699999990000 ~60000 2 13\n${fp}1700000070000`,
    );
    assert.deepEqual(settledRecord('k', uncertain), {
      key: 'k',
      state: 'uncertain',
      fingerprint: fp,
      generation: 1,
      leaseUntil: 1700000000000,
      expiresAt: 1700000070000,
      createdAt: 1699999990000,
      completedAt: 1700000010000,
    });
  });
});
