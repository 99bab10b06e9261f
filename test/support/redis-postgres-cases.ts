import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { ClaimRequest, IdempotencyStore, StoredResponse } from '../../src/stores/types.js';

/*
 * Store-specific cases for the networked stores (PostgreSQL, Redis standalone and Cluster), run on
 * store time: short leases and polling, never fixed sleeps (conventions §7.4). They add to the
 * shared contract suite what matters most on a real server: the claim race, fencing after a real
 * lease lapse, tombstone generations, expiry, and deadlines taken from the store's clock.
 */

export interface NetworkedStoreCases {
  name: string;
  create: () => Promise<{ store: IdempotencyStore; cleanup?: () => Promise<void> }>;
  /** Redis deletes expired records itself, so a key past retention starts at generation 1. */
  expiresByTtl: boolean;
}

let counter = 0;
const key = (what: string) =>
  `${what}-${process.pid}-${Date.now()}-${counter++}-${randomBytes(4).toString('hex')}`;
const token = () => randomBytes(16).toString('hex');
const LONG = 60_000;

function claim(k: string, overrides: Partial<ClaimRequest> = {}): ClaimRequest {
  return { key: k, fingerprint: 'fp-a', token: token(), leaseMs: LONG, retentionMs: LONG, ...overrides };
}

/** Polls `probe` every 10–50 ms until it holds; fails after `timeoutMs`. */
export async function eventually(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (let wait = 10; ; wait = Math.min(wait * 2, 50)) {
    if (await probe()) return;
    if (performance.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, wait));
  }
}

const response = (body: Uint8Array): StoredResponse => ({
  status: 201,
  headers: [
    ['content-type', 'application/octet-stream'],
    ['x-a', 'ü€'],
  ],
  body,
});

export function defineNetworkedStoreCases(options: NetworkedStoreCases): void {
  function test(name: string, body: (store: IdempotencyStore) => Promise<void>): void {
    it(name, async () => {
      const { store, cleanup } = await options.create();
      try {
        await body(store);
      } finally {
        await store.close();
        await cleanup?.();
      }
    });
  }

  describe(`${options.name}: store cases on store time`, () => {
    test('50 parallel claims on one key: exactly one acquired, 49 see its in-progress record', async (store) => {
      const k = key('race');
      const results = await Promise.all(Array.from({ length: 50 }, () => store.claim(claim(k))));
      const acquired = results.filter((r) => r.outcome === 'acquired');
      assert.equal(acquired.length, 1);
      for (const r of results) {
        if (r.outcome === 'acquired') assert.equal(r.generation, 1);
        else
          assert.deepEqual(
            [r.outcome, r.record.state, r.record.generation],
            ['in_progress', 'in_progress', 1],
          );
      }
    });

    test('fencing: after a real lease lapse the same request takes over at generation 2; the old owner is refused', async (store) => {
      const k = key('fence');
      const a = claim(k, { leaseMs: 150 });
      assert.deepEqual(await store.claim(a), { outcome: 'acquired', generation: 1 });
      let b = claim(k);
      await eventually('the takeover', async () => {
        b = claim(k);
        return (await store.claim(b)).outcome === 'acquired';
      });
      const body = new Uint8Array([1, 2, 3]);
      assert.equal(
        await store.heartbeat({ key: k, token: a.token, leaseMs: LONG, retentionMs: LONG }),
        false,
      );
      assert.equal(
        await store.complete({ key: k, token: a.token, response: response(body), retentionMs: LONG }),
        false,
      );
      assert.equal(await store.release({ key: k, token: a.token, retentionMs: LONG }), false);
      assert.equal(await store.markUncertain({ key: k, token: a.token, retentionMs: LONG }), false);
      assert.equal(
        await store.complete({ key: k, token: b.token, response: response(body), retentionMs: LONG }),
        true,
      );
      const record = await store.get(k);
      assert.deepEqual([record?.state, record?.generation], ['completed', 2]);
    });

    test('a lapsed lease of another request (other fingerprint) is not taken over', async (store) => {
      const k = key('other-fp');
      await store.claim(claim(k, { leaseMs: 100 }));
      await eventually(
        'the lease to lapse',
        async () => ((await store.get(k))?.leaseUntil ?? 0) < (await probeNow(store)),
      );
      const other = await store.claim(claim(k, { fingerprint: 'fp-b' }));
      assert.equal(other.outcome, 'in_progress');
    });

    test('release tombstones keep the generation: 1, 2, 3 across releases', async (store) => {
      const k = key('tombstone');
      for (const generation of [1, 2, 3]) {
        const c = claim(k);
        assert.deepEqual(await store.claim(c), { outcome: 'acquired', generation });
        assert.equal(await store.release({ key: k, token: c.token, retentionMs: LONG }), true);
        const record = await store.get(k);
        assert.deepEqual([record?.state, record?.generation], ['released', generation]);
      }
    });

    test('deadlines come from the store clock: lease, orphan horizon, retention from completion', async (store) => {
      const k = key('times');
      const c = claim(k, { leaseMs: 5_000, retentionMs: 7_000 });
      await store.claim(c);
      const held = await store.get(k);
      assert.ok(held);
      assert.ok(Math.abs(held.createdAt - Date.now()) < 5_000, 'createdAt is epoch ms near now (same host)');
      assert.equal(held.leaseUntil - held.createdAt, 5_000);
      assert.equal(held.expiresAt - held.leaseUntil, 7_000);
      assert.equal(held.completedAt, null);
      await store.complete({
        key: k,
        token: c.token,
        response: response(new Uint8Array()),
        retentionMs: 9_000,
      });
      const done = await store.get(k);
      assert.ok(done?.completedAt);
      assert.equal(done.expiresAt - done.completedAt, 9_000);
      assert.ok(done.completedAt >= held.createdAt);
    });

    test('a completed key is new again after retention (polled), uncertain holds until then', async (store) => {
      const k = key('retention');
      const c = claim(k);
      await store.claim(c);
      await store.markUncertain({ key: k, token: c.token, retentionMs: 150 });
      const held = await store.claim(claim(k));
      assert.deepEqual(
        [held.outcome, held.outcome !== 'acquired' && held.record.state],
        ['completed', 'uncertain'],
      );
      let generation = 0;
      await eventually('retention to end', async () => {
        const r = await store.claim(claim(k));
        if (r.outcome === 'acquired') generation = r.generation;
        return r.outcome === 'acquired';
      });
      assert.equal(generation, options.expiresByTtl ? 1 : 2);
    });

    test('responses round-trip byte for byte: 64 KiB of random bytes, empty, omitted with hash', async (store) => {
      const cases: StoredResponse[] = [
        response(randomBytes(65_536)),
        { status: 204, headers: [], body: new Uint8Array() },
        { status: 200, headers: [], body: new Uint8Array(), bodyOmitted: true, bodySha256: 'ab'.repeat(32) },
      ];
      for (const stored of cases) {
        const k = key('bytes');
        const c = claim(k);
        await store.claim(c);
        await store.complete({ key: k, token: c.token, response: stored, retentionMs: LONG });
        const replay = await store.claim(claim(k));
        assert.equal(replay.outcome, 'completed');
        assert.deepEqual(replay.outcome === 'completed' && replay.record.response, {
          ...stored,
          body: new Uint8Array(stored.body),
        });
      }
    });

    test('sweep never deletes a live lease', async (store) => {
      const k = key('live');
      await store.claim(claim(k, { retentionMs: 1 }));
      await store.sweep(1_000);
      assert.equal((await store.get(k))?.state, 'in_progress');
    });
  });
}

/** The store's current time, read through a throwaway record's createdAt. */
async function probeNow(store: IdempotencyStore): Promise<number> {
  const k = key('now');
  await store.claim(claim(k));
  const now = (await store.get(k))?.createdAt ?? 0;
  await store.delete(k);
  return now;
}
