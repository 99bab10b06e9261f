import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createIdempotency } from '../../src/core/engine.js';
import { CapacityError, IdempotencyConfigError, StoreUnavailableError } from '../../src/core/errors.js';
import {
  MEMORY_RECORD_OVERHEAD_BYTES,
  type MemoryStoreOptions,
  memoryStore,
} from '../../src/stores/memory.js';
import type { ClaimRequest, IdempotencyStore, StoredRecord } from '../../src/stores/types.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { manualClock } from '../support/engine-helpers.js';

const quiet = { onWarning: () => {} };

/** Serves a memory-store engine on a real socket; the handler answers `size` bytes of 'x'. */
async function servedEngine(storeOptions: MemoryStoreOptions) {
  const store = memoryStore({ ...quiet, ...storeOptions });
  const idem = createIdempotency({ store, ...quiet, sweepIntervalMs: 0 });
  let executions = 0;
  const served = await serveFetch((request) =>
    idem.handle(request, async () => {
      executions++;
      const size = Number(new URL(request.url).searchParams.get('size') ?? '2');
      return new Response('x'.repeat(size), { status: 201, headers: { 'content-type': 'text/plain' } });
    }),
  );
  after(() => served.close());
  const post = (caller: string, key: string, size = 2) =>
    fetch(`${served.url}/orders?size=${size}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${caller}`, 'idempotency-key': key, 'content-type': 'text/plain' },
      body: 'order',
      signal: AbortSignal.timeout(5_000),
    });
  return { store, post, executions: () => executions };
}

async function problemType(response: Response): Promise<string> {
  assert.equal(response.headers.get('content-type'), 'application/problem+json');
  return ((await response.json()) as { type: string }).type;
}

describe('memory store: per-principal record cap through the engine', () => {
  it('a principal that fills its share gets 429 capacity while another principal still executes', async () => {
    const app = await servedEngine({ maxEntries: 20, maxEntriesPerPrincipal: 3 });
    for (const key of ['a1', 'a2', 'a3']) assert.equal((await app.post('alice', key)).status, 201);

    const refused = await app.post('alice', 'a4');
    assert.equal(refused.status, 429);
    assert.ok(refused.headers.get('retry-after'), 'a 429 says when to retry');
    assert.equal(await problemType(refused), 'urn:idemkit:problem:capacity');
    assert.equal(app.executions(), 3, 'the refused request never ran');

    const bob = await app.post('bob', 'b1');
    assert.equal(bob.status, 201);
    assert.equal(bob.headers.get('idempotent-replayed'), 'false');

    // Keys alice already holds still replay: the cap refuses new records, never old ones.
    const replay = await app.post('alice', 'a1');
    assert.equal(replay.status, 201);
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    assert.equal(app.executions(), 4);
  });

  it('passes an opaque partition per tenant and principal, never the principal itself', async () => {
    const seen: (string | undefined)[] = [];
    const inner = memoryStore(quiet);
    const spy: IdempotencyStore = {
      ...inner,
      claim(request: ClaimRequest) {
        seen.push(request.partition);
        return inner.claim(request);
      },
    };
    const engine = createIdempotency({
      store: spy,
      ...quiet,
      sweepIntervalMs: 0,
      principal: (native) => (native as { user: string }).user,
      tenant: (native) => (native as { tenant: string }).tenant,
    });
    const begin = (user: string, tenant: string, key: string) =>
      engine.begin({
        method: 'POST',
        path: '/orders',
        headers: { 'idempotency-key': key },
        body: new Uint8Array(),
        native: { user, tenant },
      });

    await begin('alice@example.com', 't1', 'k1');
    await begin('alice@example.com', 't1', 'k2');
    await begin('bob@example.com', 't1', 'k3');
    await begin('alice@example.com', 't2', 'k4');

    const [alice, aliceAgain, bob, aliceElsewhere] = seen;
    assert.equal(typeof alice, 'string');
    assert.ok((alice as string).length <= 32, 'short');
    assert.doesNotMatch(alice as string, /alice|example/);
    assert.equal(aliceAgain, alice);
    assert.notEqual(bob, alice);
    assert.notEqual(aliceElsewhere, alice);
  });
});

describe('memory store: byte cap', () => {
  it('keeps a completion that would pass maxBytes without its body: the first caller gets it whole, replays 409', async () => {
    const app = await servedEngine({ maxEntries: 20, maxEntriesPerPrincipal: 20, maxBytes: 4_096 });

    const first = await app.post('alice', 'k1', 2_500);
    assert.equal((await first.text()).length, 2_500);
    const second = await app.post('alice', 'k2', 2_500);
    assert.equal((await second.text()).length, 2_500, 'the original request never fails at the cap');

    const replayedFirst = await app.post('alice', 'k1', 2_500);
    assert.equal(replayedFirst.headers.get('idempotent-replayed'), 'true');
    assert.equal((await replayedFirst.text()).length, 2_500);
    const replayedSecond = await app.post('alice', 'k2', 2_500);
    assert.equal(replayedSecond.status, 409);
    assert.equal(await problemType(replayedSecond), 'urn:idemkit:problem:result-unavailable');
    assert.equal(app.executions(), 2, 'a dropped body never re-executes');
    assert.equal(app.store.stats().bodiesOmittedAtCapacity, 1);

    // Records themselves still fit: new keys keep executing.
    assert.equal((await app.post('bob', 'k3')).status, 201);
  });

  it('gives each principal the same share of bytes as of records, so one cannot crowd out the replays of others', async () => {
    const app = await servedEngine({ maxEntries: 20, maxEntriesPerPrincipal: 10, maxBytes: 8_000 });

    await app.post('alice', 'a1', 3_000);
    await app.post('alice', 'a2', 3_000);
    await app.post('bob', 'b1', 3_000);

    assert.equal((await app.post('alice', 'a2', 3_000)).status, 409, "alice's second body passed her half");
    const bob = await app.post('bob', 'b1', 3_000);
    assert.equal(bob.headers.get('idempotent-replayed'), 'true');
    assert.equal((await bob.text()).length, 3_000);
  });

  it('refuses new claims (503) only while live records fill maxBytes; expiry frees their bytes', async () => {
    const clock = manualClock();
    const oneRecord = MEMORY_RECORD_OVERHEAD_BYTES + 'k1'.length + 'fp'.length;
    const store = memoryStore({ ...quiet, clock: clock.now, maxBytes: 2 * oneRecord });
    const claim = (key: string): ClaimRequest => ({
      key,
      fingerprint: 'fp',
      token: `t-${key}`,
      leaseMs: 1_000,
      retentionMs: 1_000,
    });

    await store.claim(claim('k1'));
    clock.advance(500);
    await store.claim(claim('k2'));
    await assert.rejects(store.claim(claim('k3')), StoreUnavailableError);
    assert.equal(store.stats().bytes, 2 * oneRecord);

    clock.advance(1_500); // k1 expired (lease + orphan horizon), k2 has not
    assert.equal((await store.claim(claim('k3'))).outcome, 'acquired');
    assert.equal(await store.get('k1'), undefined);
    assert.equal(store.stats().bytes, 2 * oneRecord);
  });

  it('stores bodies again once the records holding the bytes have expired', async () => {
    const clock = manualClock();
    const store = memoryStore({
      ...quiet,
      clock: clock.now,
      maxBytes: 4_096,
      maxEntriesPerPrincipal: 100_000,
    });
    const body = new Uint8Array(2_500);
    const done = async (key: string) => {
      await store.claim({ key, fingerprint: 'fp', token: key, leaseMs: 1_000, retentionMs: 1_000 });
      await store.complete({
        key,
        token: key,
        retentionMs: 1_000,
        response: { status: 200, headers: [], body },
      });
      return (await store.get(key)) as StoredRecord;
    };

    assert.equal((await done('k1')).response?.body.byteLength, 2_500);
    assert.equal((await done('k2')).response?.bodyOmitted, true);
    const before = store.stats().bytes;
    clock.advance(1_000);
    assert.equal(await store.sweep(10), 2);
    assert.equal(store.stats().bytes, 0, `${before} bytes were freed by expiry`);
    assert.equal((await done('k3')).response?.body.byteLength, 2_500);
  });

  it('warns once when it first keeps a result without its body', async () => {
    const warnings: string[] = [];
    const store = memoryStore({ maxBytes: 1_024, onWarning: (m) => warnings.push(m) });
    for (const key of ['k1', 'k2', 'k3']) {
      await store.claim({ key, fingerprint: 'fp', token: key, leaseMs: 1_000, retentionMs: 1_000 });
      const response = { status: 200, headers: [] as [string, string][], body: new Uint8Array(2_000) };
      await store.complete({ key, token: key, retentionMs: 1_000, response });
    }

    assert.equal(store.stats().bodiesOmittedAtCapacity, 3);
    assert.equal(warnings.length, 2, 'one for single-process, one for the cap');
    assert.match(warnings[1] ?? '', /maxBytes/);
  });
});

describe('memory store: per-partition cap', () => {
  const claim = (key: string, partition?: string): ClaimRequest => ({
    key,
    fingerprint: 'fp',
    token: `t-${key}`,
    leaseMs: 1_000,
    retentionMs: 1_000,
    ...(partition === undefined ? {} : { partition }),
  });

  it('refuses a partition more live records with CapacityError; tombstones count, delete and expiry free', async () => {
    const clock = manualClock();
    const store = memoryStore({ ...quiet, clock: clock.now, maxEntriesPerPrincipal: 2 });

    await store.claim(claim('k1', 'p1'));
    clock.advance(500);
    await store.claim(claim('k2', 'p1'));
    await assert.rejects(store.claim(claim('k3', 'p1')), (error: unknown) => {
      assert.ok(error instanceof CapacityError, 'a CapacityError');
      assert.equal(error.code, 'capacity');
      assert.equal(error.status, 429);
      return true;
    });
    assert.equal(
      (await store.claim(claim('k4', 'p2'))).outcome,
      'acquired',
      'other partitions are untouched',
    );
    assert.equal((await store.claim(claim('k5'))).outcome, 'acquired', 'no partition, no share');

    await store.release({ key: 'k2', token: 't-k2', retentionMs: 10_000 });
    await assert.rejects(store.claim(claim('k3', 'p1')), CapacityError, 'a tombstone is still held');
    assert.equal((await store.claim(claim('k2', 'p1'))).outcome, 'acquired', 'its own key is reclaimable');

    assert.equal(await store.delete('k2'), true);
    assert.equal((await store.claim(claim('k3', 'p1'))).outcome, 'acquired');
    await assert.rejects(store.claim(claim('k6', 'p1')), CapacityError);

    clock.advance(1_500); // k1 has expired
    assert.equal((await store.claim(claim('k6', 'p1'))).outcome, 'acquired');
  });

  it('rejects bad limits with a configuration error', () => {
    for (const options of [
      { maxBytes: 0 },
      { maxBytes: -1 },
      { maxBytes: 1.5 },
      { maxBytes: Number.NaN },
      { maxEntriesPerPrincipal: 0 },
      { maxEntriesPerPrincipal: 2.5 },
    ]) {
      assert.throws(
        () => memoryStore({ ...quiet, ...options }),
        IdempotencyConfigError,
        JSON.stringify(options),
      );
    }
  });
});

/** A seeded generator, so a failure replays the same sequence. */
function seeded(seed: number) {
  let state = seed >>> 0;
  return (n: number) => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state % n;
  };
}

describe('memory store: counters stay exact (model check)', () => {
  it('records, bytes and partitions match what get() shows after every operation', async () => {
    const clock = manualClock();
    const limits = { maxEntries: 25, maxEntriesPerPrincipal: 10, maxBytes: 9_000 };
    const store = memoryStore({ ...quiet, clock: clock.now, ...limits });
    const random = seeded(20_240_601);
    const keys = Array.from({ length: 40 }, (_, i) => `key-${i}`);
    const partitionOf = (key: string) => `p${Number(key.slice(4)) % 3}`;
    const tokens = new Map<string, string>();
    let refusals = 0;

    const sizeOf = (key: string, record: StoredRecord) => {
      const response = record.response;
      const responseBytes = response
        ? response.body.byteLength +
          response.headers.reduce((sum, [n, v]) => sum + n.length + v.length, 0) +
          (response.bodySha256?.length ?? 0)
        : 0;
      return (
        MEMORY_RECORD_OVERHEAD_BYTES +
        key.length +
        record.fingerprint.length +
        partitionOf(key).length +
        responseBytes
      );
    };

    for (let step = 0; step < 3_000; step++) {
      const key = keys[random(keys.length)] as string;
      const token = tokens.get(key) ?? 'none';
      const op = random(9);
      if (op <= 2) {
        const next = `t${step}`;
        try {
          const result = await store.claim({
            key,
            fingerprint: `fp${random(2)}`,
            token: next,
            leaseMs: 20,
            retentionMs: 40,
            partition: partitionOf(key),
          });
          if (result.outcome === 'acquired') tokens.set(key, next);
        } catch (error) {
          refusals++;
          assert.ok(error instanceof CapacityError || error instanceof StoreUnavailableError, String(error));
        }
      } else if (op === 3) {
        const size = random(3) * 1_200;
        const headers: [string, string][] = random(2) ? [['content-type', 'text/plain']] : [];
        await store.complete({
          key,
          token,
          retentionMs: 40,
          response: { status: 200, headers, body: new Uint8Array(size) },
        });
      } else if (op === 4) await store.release({ key, token, retentionMs: 40 });
      else if (op === 5) await store.markUncertain({ key, token, retentionMs: 40 });
      else if (op === 6) await store.heartbeat({ key, token, leaseMs: 20, retentionMs: 40 });
      else if (op === 7) await (random(4) === 0 ? store.delete(key) : store.sweep(1 + random(5)));
      else clock.advance(random(15));

      const visible = new Map<string, StoredRecord>();
      for (const k of keys) {
        const record = await store.get(k);
        if (record) visible.set(k, record);
      }
      const stats = store.stats();
      const perPartition = new Map<string, number>();
      for (const k of visible.keys())
        perPartition.set(partitionOf(k), (perPartition.get(partitionOf(k)) ?? 0) + 1);
      const bytes = [...visible].reduce((sum, [k, record]) => sum + sizeOf(k, record), 0);

      assert.equal(stats.records, visible.size, `records after step ${step}`);
      assert.equal(stats.bytes, bytes, `bytes after step ${step}`);
      assert.equal(stats.partitions, perPartition.size, `partitions after step ${step}`);
      assert.ok(visible.size <= limits.maxEntries, `${visible.size} records after step ${step}`);
      for (const [name, count] of perPartition) {
        assert.ok(count <= limits.maxEntriesPerPrincipal, `${count} records in ${name} after step ${step}`);
      }
    }
    assert.ok(refusals > 0, 'the sequence reached the caps');
    assert.ok(store.stats().bodiesOmittedAtCapacity > 0, 'the sequence reached the byte cap');

    clock.advance(1_000);
    for (let round = 0; round < 100 && (await store.sweep(7)) > 0; round++) {}
    assert.deepEqual(
      { ...store.stats(), bodiesOmittedAtCapacity: 0 },
      { records: 0, bytes: 0, partitions: 0, bodiesOmittedAtCapacity: 0 },
    );
  });
});
