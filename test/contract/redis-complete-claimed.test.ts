import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { StoredRecord, StoredResponse } from '../../src/core/store.js';
import { redisStore } from '../../src/stores/redis.js';
import type { NodeRedisClientLike, RedisArgument } from '../../src/stores/redis-clients.js';
import { COMPLETE, COMPLETE_CLAIMED } from '../../src/stores/redis-scripts.js';
import { ioredisClient, nodeRedisClient, randomPrefix } from '../support/redis-service.js';

/*
 * A completion of a claim the same store instance made with SET NX, untouched since, runs
 * COMPLETE_CLAIMED (no parsing in Lua); everything else must fall through to COMPLETE with the
 * same answers and the same record bytes: fencing, waiters' wake-ups, heartbeats, deletions.
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
  headers: [['content-type', 'application/json']],
  body: Buffer.from('{"id":"ch_123"}'),
};
const FINGERPRINT = 'v1:Qm9ndXMgZmluZ2VycHJpbnQ';

/** A node-redis client that records which scripts the store ran. */
function spying() {
  const scripts: string[] = [];
  const client: NodeRedisClientLike = {
    sendCommand(args: RedisArgument[], options) {
      if (args[0] === 'EVALSHA') {
        const sha = String(args[1]);
        scripts.push(
          sha === COMPLETE_CLAIMED.sha ? 'complete-claimed' : sha === COMPLETE.sha ? 'complete' : 'other',
        );
      }
      return nodeRedis.sendCommand(args, options);
    },
  };
  return { client, scripts };
}

const claim = (key: string, token: string, leaseMs = 60_000) => ({
  key,
  fingerprint: FINGERPRINT,
  token,
  leaseMs,
  retentionMs: 90_000,
});
const complete = (key: string, token: string) => ({ key, token, response: RESPONSE, retentionMs: 120_000 });
const token = () => randomBytes(16).toString('hex');

/** The record without its clock readings (epoch ms), which differ between two writes. */
async function shape(prefix: string, key: string): Promise<string> {
  const raw = await ioredis.get(`${prefix}{${key}}`);
  return String(raw).replace(/ \d{13} \d{13} /, ' <lu> <ca> ');
}

describe('redis store: completing its own claim', () => {
  it('runs COMPLETE_CLAIMED and writes the record COMPLETE would, byte for byte', async () => {
    const prefix = randomPrefix('claimed');
    const spy = spying();
    const store = redisStore({ client: spy.client, prefix });
    const other = redisStore({ client: ioredis, prefix });

    const [fast, general] = [token(), token()];
    await store.claim(claim('fast', fast));
    await store.claim(claim('general', general));
    spy.scripts.length = 0;
    assert.equal(await store.complete(complete('fast', fast)), true);
    assert.deepEqual(spy.scripts, ['complete-claimed']);
    // Another instance never saw the claim: it runs the general script.
    assert.equal(await other.complete(complete('general', general)), true);

    assert.equal(await shape(prefix, 'fast'), await shape(prefix, 'general'));
    const [a, b] = [await store.get('fast'), await store.get('general')];
    assert.ok(a && b);
    const untimed = (r: StoredRecord) => [r.state, r.fingerprint, r.generation, r.response];
    assert.deepEqual(untimed(a), untimed(b));
    assert.equal(a.state, 'completed');
    assert.equal(a.generation, 1);
    assert.equal(a.leaseUntil - a.createdAt, 60_000);
    assert.ok(a.completedAt !== null && a.completedAt >= a.createdAt);
    assert.equal(a.expiresAt - a.completedAt, 120_000);
    assert.deepEqual(a.response, { ...RESPONSE, body: new Uint8Array(RESPONSE.body) });
    const ttl = await ioredis.pttl(`${prefix}{fast}`);
    assert.ok(ttl > 119_000 && ttl <= 120_000, `pttl ${ttl}`);
    // Settled: a second completion with the same token is refused.
    assert.equal(await store.complete(complete('fast', fast)), false);
  });

  it('refuses a stale owner after a takeover, though it still remembers its claim', async () => {
    const prefix = randomPrefix('claimed-stale');
    const store = redisStore({ client: ioredis, prefix });
    const [stale, fresh] = [token(), token()];
    await store.claim(claim('k', stale, 30));
    await delay(60);
    const takeover = await store.claim(claim('k', fresh));
    assert.deepEqual(takeover, { outcome: 'acquired', generation: 2, takeover: true });

    assert.equal(await store.complete(complete('k', stale)), false);
    assert.equal(await store.release({ key: 'k', token: stale, retentionMs: 1_000 }), false);
    const record = await store.get('k');
    assert.equal(record?.state, 'in_progress');
    assert.equal(record?.generation, 2);
    assert.equal(await store.complete(complete('k', fresh)), true);
    assert.equal((await store.get('k'))?.generation, 2);
  });

  it('publishes the wake-up when a duplicate has marked the record (the general script runs)', async () => {
    const prefix = randomPrefix('claimed-waited');
    const spy = spying();
    const owner = redisStore({ client: spy.client, prefix });
    const waiter = redisStore({ client: ioredis, prefix });
    try {
      const t = token();
      await owner.claim(claim('k', t));
      assert.equal((await waiter.claim(claim('k', token()))).outcome, 'in_progress');
      // The first subscription opens the channel and is called once it listens (listeners are
      // called once); the second one can then only be woken by a PUBLISH.
      let listening = false;
      assert.ok(
        waiter.onSettled?.('k', () => (listening = true)),
        'the waiter subscribes',
      );
      const deadline = Date.now() + 3_000;
      while (!listening && Date.now() < deadline) await delay(5);
      assert.ok(listening, 'the channel listens');
      let woken = false;
      assert.ok(waiter.onSettled?.('k', () => (woken = true)));
      spy.scripts.length = 0;

      assert.equal(await owner.complete(complete('k', t)), true);
      assert.deepEqual(spy.scripts, ['complete-claimed', 'complete']);
      while (!woken && Date.now() < deadline) await delay(5);
      assert.ok(woken, 'the completion woke the waiter');
    } finally {
      await owner.close();
      await waiter.close();
    }
  });

  it('completes after a heartbeat, and refuses a record deleted since the claim', async () => {
    const prefix = randomPrefix('claimed-beat');
    const spy = spying();
    const store = redisStore({ client: spy.client, prefix });
    const [beat, gone] = [token(), token()];
    await store.claim(claim('beat', beat));
    assert.equal(
      await store.heartbeat({ key: 'beat', token: beat, leaseMs: 45_000, retentionMs: 90_000 }),
      true,
    );
    spy.scripts.length = 0;
    assert.equal(await store.complete(complete('beat', beat)), true);
    assert.deepEqual(spy.scripts, ['complete']);
    const record = await store.get('beat');
    assert.equal(record?.state, 'completed');
    assert.ok(record && record.leaseUntil - record.createdAt >= 45_000);

    await store.claim(claim('gone', gone));
    assert.equal(await store.delete('gone'), true);
    assert.equal(await store.complete(complete('gone', gone)), false);
    assert.equal(await store.get('gone'), undefined);
  });

  it('COMPLETE_CLAIMED leaves a record that is not the claim exactly as it was (value and expiry), and creates none', async () => {
    const prefix = randomPrefix('claimed-untouched');
    const key = `${prefix}{k}`;
    const args = (value: string) => [value, '90000', '150000', ' ~120000 3 0\nabc{}', '120000'];
    const other = '2 in_progress 1 1 ~90000 ~150000 - 3 32\nabc0123456789abcdef0123456789abcdef';
    await ioredis.set(key, other, 'PX', 150_000);
    const expiresAt = await ioredis.pexpiretime(key);
    assert.equal(await ioredis.eval(COMPLETE_CLAIMED.source, 1, key, ...args('not what is there')), -1);
    assert.equal(await ioredis.get(key), other);
    assert.equal(await ioredis.pexpiretime(key), expiresAt);

    const gone = `${prefix}{gone}`;
    assert.equal(await ioredis.eval(COMPLETE_CLAIMED.source, 1, gone, ...args(other)), 0);
    assert.equal(await ioredis.exists(gone), 0);

    // The record as claimed: completed, with the retention as its TTL.
    assert.equal(await ioredis.eval(COMPLETE_CLAIMED.source, 1, key, ...args(other)), 1);
    assert.match(String(await ioredis.get(key)), /^2 completed 1 0 \d{13} \d{13} ~120000 3 0\nabc\{\}$/);
    assert.ok((await ioredis.pttl(key)) > 119_000);
  });

  it('a completion for another key than the claim runs the general script (and is refused)', async () => {
    const prefix = randomPrefix('claimed-key');
    const spy = spying();
    const store = redisStore({ client: spy.client, prefix });
    const t = token();
    await store.claim(claim('a', t));
    await store.claim(claim('b', token()));
    spy.scripts.length = 0;
    assert.equal(await store.complete(complete('b', t)), false);
    assert.deepEqual(spy.scripts, ['complete']);
    // The claim on `a` is unaffected, though its fast path is now forgotten.
    assert.equal(await store.complete(complete('a', t)), true);
    assert.equal((await store.get('a'))?.state, 'completed');
  });
});
