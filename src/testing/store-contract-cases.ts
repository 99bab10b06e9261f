import assert from 'node:assert/strict';
import type { ClaimRequest, ClaimResult, IdempotencyStore, StoredRecord } from '../core/store.js';
import {
  assertNoToken,
  assertSameResponse,
  copyResponse,
  LONG_MS,
  RESPONSES,
  randomFingerprint,
  randomKey,
  randomToken,
  SHORT_MS,
  sweepAll,
} from './store-contract-fixtures.js';

/*
 * The example-based cases of the store contract. Each runs on a fresh store from the harness and uses
 * random keys; `pass(ms)` lets store time go by, with the injected clock or by polling.
 */

export interface CaseContext {
  store: IdempotencyStore;
  clock: { advance(ms: number): void } | undefined;
  /** Lets `ms` of store time pass (clock advance, or a polled probe lease). */
  pass(ms: number): Promise<void>;
  /** A claim request on `key` with a fresh token and long durations, overridable. */
  request(key: string, fingerprint: string, overrides?: Partial<ClaimRequest>): ClaimRequest;
}

type Define = (name: string, body: (context: CaseContext) => Promise<void>) => void;
type Skip = (name: string, reason: string) => void;

export function defineContractCases(test: Define, skipped: Skip, expiresByTtl: boolean): void {
  defineClaimCases(test);
  defineReplayCases(test);
  defineFencingCases(test);
  defineExpiryCases(test, skipped, expiresByTtl);
  defineConcurrencyCases(test);
  defineHousekeepingCases(test);
}

function acquired(result: ClaimResult): number {
  assert.equal(result.outcome, 'acquired', `expected acquired, got ${JSON.stringify(result)}`);
  return (result as { generation: number }).generation;
}

function loserRecord(result: ClaimResult, outcome: 'in_progress' | 'completed'): StoredRecord {
  assert.equal(result.outcome, outcome, `expected ${outcome}, got outcome ${result.outcome}`);
  return (result as { record: StoredRecord }).record;
}

function defineClaimCases(test: Define): void {
  test('a new key is acquired with generation 1', async ({ store, request }) => {
    const result = await store.claim(request(randomKey(), randomFingerprint()));

    assert.deepEqual(result, { outcome: 'acquired', generation: 1 });
  });

  test('a second claim with another token sees in_progress with the record', async ({ store, request }) => {
    const key = randomKey();
    const fingerprint = randomFingerprint();
    const first = request(key, fingerprint, { leaseMs: 30_000 });
    await store.claim(first);

    const record = loserRecord(await store.claim(request(key, fingerprint)), 'in_progress');

    assert.equal(record.key, key);
    assert.equal(record.state, 'in_progress');
    assert.equal(record.fingerprint, fingerprint);
    assert.equal(record.generation, 1);
    assert.equal(record.completedAt, null);
    assert.equal(record.response, undefined);
    assert.ok(
      Math.abs(record.leaseUntil - record.createdAt - 30_000) <= 1,
      'leaseUntil = createdAt + leaseMs',
    );
    assert.ok(
      record.expiresAt >= record.leaseUntil,
      'an in-progress record expires no earlier than its lease',
    );
    assertNoToken(record, first.token);
  });

  test('get returns the record without its owner token, and undefined for an unknown key', async ({
    store,
    request,
  }) => {
    const key = randomKey();
    const claim = request(key, randomFingerprint());
    await store.claim(claim);

    const record = await store.get(key);

    assert.equal(record?.state, 'in_progress');
    assert.equal(record?.generation, 1);
    assertNoToken(record, claim.token);
    assert.equal(await store.get(randomKey()), undefined);
  });

  test('markUncertain holds the key: a claim returns completed with state uncertain', async ({
    store,
    request,
  }) => {
    const key = randomKey();
    const fingerprint = randomFingerprint();
    const owner = request(key, fingerprint);
    await store.claim(owner);

    assert.equal(await store.markUncertain({ key, token: owner.token, retentionMs: LONG_MS }), true);
    const record = loserRecord(await store.claim(request(key, fingerprint)), 'completed');

    assert.equal(record.state, 'uncertain');
    assert.equal(record.generation, 1);
    assert.equal(record.response, undefined);
    assert.equal(typeof record.completedAt, 'number');
  });

  test('release leaves a tombstone: the next claim acquires with generation + 1', async ({
    store,
    request,
  }) => {
    const key = randomKey();
    const owner = request(key, randomFingerprint());
    await store.claim(owner);

    assert.equal(await store.release({ key, token: owner.token, retentionMs: LONG_MS }), true);
    const tombstone = await store.get(key);
    // A release means no effect started, so even another request may take the key.
    const next = await store.claim(request(key, randomFingerprint()));

    assert.equal(tombstone?.state, 'released');
    assert.equal(tombstone?.generation, 1);
    assert.deepEqual(next, { outcome: 'acquired', generation: 2 });
  });
}

function defineReplayCases(test: Define): void {
  const cases = [
    ['a binary body with all 256 byte values and repeated, ordered headers', RESPONSES.binary],
    ['an empty body', RESPONSES.empty],
    ['a 204 without headers', RESPONSES.noContent],
    ['bodyOmitted with its bodySha256', RESPONSES.omitted],
    ['a UTF-8 problem body', RESPONSES.utf8],
  ] as const;
  for (const [what, response] of cases) {
    test(`complete then claim returns completed with ${what}, byte for byte`, async ({ store, request }) => {
      const key = randomKey();
      const fingerprint = randomFingerprint();
      const owner = request(key, fingerprint);
      await store.claim(owner);

      const stored = await store.complete({
        key,
        token: owner.token,
        response: copyResponse(response),
        retentionMs: 30_000,
      });
      const record = loserRecord(await store.claim(request(key, fingerprint)), 'completed');

      assert.equal(stored, true);
      assert.equal(record.state, 'completed');
      assert.equal(record.generation, 1);
      assert.equal(typeof record.completedAt, 'number');
      assert.ok(
        Math.abs(record.expiresAt - (record.completedAt ?? 0) - 30_000) <= 1,
        'retention counts from completion',
      );
      assertSameResponse(record.response, response);
      assertSameResponse((await store.get(key))?.response, response);
      assertNoToken(record, owner.token);
    });
  }

  test('complete keeps its own copy: changing the caller buffer afterwards changes nothing', async ({
    store,
    request,
  }) => {
    const key = randomKey();
    const owner = request(key, randomFingerprint());
    await store.claim(owner);
    const response = copyResponse(RESPONSES.binary);

    await store.complete({ key, token: owner.token, response, retentionMs: LONG_MS });
    response.body.fill(0);
    (response.headers[0] as [string, string])[1] = 'changed';

    assertSameResponse((await store.get(key))?.response, RESPONSES.binary);
  });
}

function defineFencingCases(test: Define): void {
  test('a wrong-token heartbeat, complete, release or markUncertain returns false and changes nothing', async ({
    store,
    request,
  }) => {
    const key = randomKey();
    await store.claim(request(key, randomFingerprint()));
    const before = await store.get(key);
    const token = randomToken();

    const results = [
      await store.heartbeat({ key, token, leaseMs: LONG_MS, retentionMs: LONG_MS }),
      await store.complete({ key, token, response: copyResponse(RESPONSES.binary), retentionMs: LONG_MS }),
      await store.release({ key, token, retentionMs: LONG_MS }),
      await store.markUncertain({ key, token, retentionMs: LONG_MS }),
    ];

    assert.deepEqual(results, [false, false, false, false]);
    assert.deepEqual(await store.get(key), before);
  });

  test('heartbeat on an unknown, completed, released or uncertain record returns false', async ({
    store,
    request,
  }) => {
    const beat = (key: string, token: string) =>
      store.heartbeat({ key, token, leaseMs: LONG_MS, retentionMs: LONG_MS });
    const ended = async (end: 'complete' | 'release' | 'markUncertain') => {
      const key = randomKey();
      const owner = request(key, randomFingerprint());
      await store.claim(owner);
      const response = copyResponse(RESPONSES.empty);
      assert.equal(await store[end]({ key, token: owner.token, response, retentionMs: LONG_MS }), true);
      return beat(key, owner.token);
    };

    assert.equal(await beat(randomKey(), randomToken()), false);
    assert.equal(await ended('complete'), false);
    assert.equal(await ended('release'), false);
    assert.equal(await ended('markUncertain'), false);
  });

  test('complete, release and markUncertain on a missing, released or completed record return false', async ({
    store,
    request,
  }) => {
    const response = copyResponse(RESPONSES.empty);
    const writes = (key: string, token: string) =>
      Promise.all([
        store.complete({ key, token, response, retentionMs: LONG_MS }),
        store.release({ key, token, retentionMs: LONG_MS }),
        store.markUncertain({ key, token, retentionMs: LONG_MS }),
      ]);
    const released = request(randomKey(), randomFingerprint());
    await store.claim(released);
    await store.release({ key: released.key, token: released.token, retentionMs: LONG_MS });
    const completed = request(randomKey(), randomFingerprint());
    await store.claim(completed);
    await store.complete({ key: completed.key, token: completed.token, response, retentionMs: LONG_MS });
    const completedBefore = await store.get(completed.key);

    assert.deepEqual(await writes(randomKey(), randomToken()), [false, false, false]);
    assert.deepEqual(await writes(released.key, released.token), [false, false, false]);
    assert.deepEqual(await writes(completed.key, completed.token), [false, false, false]);
    assert.equal(await store.get(released.key).then((r) => r?.state), 'released');
    assert.deepEqual(await store.get(completed.key), completedBefore);
  });

  test('heartbeat extends the lease: a claim past the old lease still sees in_progress', async ({
    store,
    request,
    pass,
  }) => {
    const key = randomKey();
    const fingerprint = randomFingerprint();
    const owner = request(key, fingerprint, { leaseMs: SHORT_MS });
    await store.claim(owner);

    assert.equal(
      await store.heartbeat({ key, token: owner.token, leaseMs: LONG_MS, retentionMs: LONG_MS }),
      true,
    );
    await pass(SHORT_MS);
    const record = loserRecord(await store.claim(request(key, fingerprint)), 'in_progress');

    assert.equal(record.generation, 1);
    assert.ok(record.leaseUntil > record.createdAt + SHORT_MS, 'heartbeat moved leaseUntil forward');
  });

  test('a lapsed lease with the same fingerprint is taken over with generation + 1', async ({
    store,
    request,
    pass,
  }) => {
    const key = randomKey();
    const fingerprint = randomFingerprint();
    await store.claim(request(key, fingerprint, { leaseMs: SHORT_MS }));

    await pass(SHORT_MS);
    const takeover = await store.claim(request(key, fingerprint));

    const { takeover: flagged, ...acquired } = takeover as { takeover?: boolean };
    assert.deepEqual(acquired, { outcome: 'acquired', generation: 2 });
    assert.ok(flagged === undefined || flagged === true, 'a store that reports takeovers reports this one');
    assert.equal((await store.get(key))?.state, 'in_progress');
  });

  test('fencing: after a takeover the old owner cannot complete or heartbeat, and its release leaves the new claim intact', async ({
    store,
    request,
    pass,
  }) => {
    const key = randomKey();
    const fingerprint = randomFingerprint();
    const owner1 = request(key, fingerprint, { leaseMs: SHORT_MS });
    await store.claim(owner1);
    await pass(SHORT_MS);
    const owner2 = request(key, fingerprint);
    acquired(await store.claim(owner2));
    const response = copyResponse(RESPONSES.binary);

    const late = [
      await store.complete({ key, token: owner1.token, response, retentionMs: LONG_MS }),
      await store.heartbeat({ key, token: owner1.token, leaseMs: LONG_MS, retentionMs: LONG_MS }),
      await store.release({ key, token: owner1.token, retentionMs: LONG_MS }),
      await store.markUncertain({ key, token: owner1.token, retentionMs: LONG_MS }),
    ];

    assert.deepEqual(late, [false, false, false, false]);
    const record = loserRecord(await store.claim(request(key, fingerprint)), 'in_progress');
    assert.equal(record.generation, 2);
    assert.equal(
      await store.complete({
        key,
        token: owner2.token,
        response: copyResponse(RESPONSES.utf8),
        retentionMs: LONG_MS,
      }),
      true,
    );
    assertSameResponse((await store.get(key))?.response, RESPONSES.utf8);
  });

  test('a lapsed lease with a different fingerprint is not taken over', async ({ store, request, pass }) => {
    const key = randomKey();
    const fingerprint = randomFingerprint();
    await store.claim(request(key, fingerprint, { leaseMs: SHORT_MS }));

    await pass(SHORT_MS);
    const other = await store.claim(request(key, randomFingerprint()));

    const record = loserRecord(other, 'in_progress');
    assert.equal(record.fingerprint, fingerprint);
    assert.equal(record.generation, 1);
  });

  test('an abandoned claim past lease plus retention is free for any request', async ({
    store,
    request,
    pass,
  }) => {
    const key = randomKey();
    await store.claim(request(key, randomFingerprint(), { leaseMs: SHORT_MS, retentionMs: SHORT_MS }));

    await pass(2 * SHORT_MS);
    const other = await store.claim(request(key, randomFingerprint()));

    assert.equal(other.outcome, 'acquired');
  });
}

function defineExpiryCases(
  test: Define,
  skipped: (name: string, reason: string) => void,
  expiresByTtl: boolean,
): void {
  // A store that drops expired records by TTL forgets the generation with them.
  const afterExpiry = expiresByTtl ? 1 : 2;

  for (const end of ['complete', 'markUncertain'] as const) {
    const state = end === 'complete' ? 'completed' : 'uncertain';
    test(`retention expiry frees a ${state} key: the next claim acquires with generation + 1`, async ({
      store,
      request,
      pass,
    }) => {
      const key = randomKey();
      const fingerprint = randomFingerprint();
      const owner = request(key, fingerprint);
      await store.claim(owner);
      const response = copyResponse(RESPONSES.binary);
      await store[end]({ key, token: owner.token, response, retentionMs: SHORT_MS });
      loserRecord(await store.claim(request(key, fingerprint)), 'completed');

      await pass(SHORT_MS);
      // Past retention the key is new again, whatever request comes with it.
      const next = await store.claim(request(key, randomFingerprint()));

      assert.deepEqual(next, { outcome: 'acquired', generation: afterExpiry });
    });
  }

  test('sweep deletes expired completed, released and uncertain records and spares a live in-progress one', async ({
    store,
    request,
    pass,
  }) => {
    const response = copyResponse(RESPONSES.empty);
    const ended = await Promise.all(
      (['complete', 'release', 'markUncertain'] as const).map(async (end) => {
        const owner = request(randomKey(), randomFingerprint());
        await store.claim(owner);
        await store[end]({ key: owner.key, token: owner.token, response, retentionMs: SHORT_MS });
        return owner.key;
      }),
    );
    const live = request(randomKey(), randomFingerprint(), { retentionMs: SHORT_MS });
    await store.claim(live);

    await pass(SHORT_MS);
    const deleted = await sweepAll(store);

    if (!expiresByTtl) assert.ok(deleted >= 3, `sweep reported ${deleted} deletions, expected at least 3`);
    for (const key of ended)
      assert.equal(await store.get(key), undefined, 'an expired record survived a sweep');
    assert.equal((await store.get(live.key))?.state, 'in_progress');
  });

  test('sweep deletes an abandoned in-progress record only after leaseUntil + retention', async ({
    store,
    request,
    pass,
  }) => {
    const abandoned = request(randomKey(), randomFingerprint(), {
      leaseMs: SHORT_MS,
      retentionMs: 5 * SHORT_MS,
    });
    await store.claim(abandoned);

    await pass(SHORT_MS);
    await sweepAll(store);
    const afterLease = await store.get(abandoned.key);
    await pass(5 * SHORT_MS);
    await sweepAll(store);

    assert.equal(afterLease?.state, 'in_progress', 'a lapsed lease was swept before its retention ended');
    assert.equal(await store.get(abandoned.key), undefined);
  });

  const limitName = 'sweep deletes at most `limit` records per call';
  if (expiresByTtl)
    skipped(limitName, 'capabilities.expiresByTtl: the backend deletes expired records itself');
  else
    test(limitName, async ({ store, request, pass }) => {
      const keys = await Promise.all(
        Array.from({ length: 5 }, async () => {
          const owner = request(randomKey(), randomFingerprint());
          await store.claim(owner);
          const response = copyResponse(RESPONSES.empty);
          await store.complete({ key: owner.key, token: owner.token, response, retentionMs: SHORT_MS });
          return owner.key;
        }),
      );
      await pass(SHORT_MS);

      const first = await store.sweep(2);
      await sweepAll(store);

      assert.equal(first, 2);
      for (const key of keys) assert.equal(await store.get(key), undefined);
    });
}

function defineConcurrencyCases(test: Define): void {
  test('50 parallel claims on one key give exactly one acquired and 49 in_progress', async ({
    store,
    request,
  }) => {
    const key = randomKey();
    const fingerprint = randomFingerprint();

    const results = await Promise.all(
      Array.from({ length: 50 }, () => store.claim(request(key, fingerprint))),
    );

    assert.equal(results.filter((r) => r.outcome === 'acquired').length, 1);
    assert.equal(results.filter((r) => r.outcome === 'in_progress').length, 49);
  });

  test('20 concurrent claims (idempotency4j): exactly one acquires and 19 see its record', async ({
    store,
    request,
  }) => {
    const key = randomKey();
    const fingerprint = randomFingerprint();

    const results = await Promise.all(
      Array.from({ length: 20 }, () => store.claim(request(key, fingerprint))),
    );

    const winners = results.filter((r) => r.outcome === 'acquired');
    assert.deepEqual(winners, [{ outcome: 'acquired', generation: 1 }]);
    for (const result of results.filter((r) => r.outcome !== 'acquired')) {
      const record = loserRecord(result, 'in_progress');
      assert.equal(record.generation, 1);
      assert.equal(record.fingerprint, fingerprint);
    }
  });

  test('parallel claims on 50 distinct keys all acquire', async ({ store, request }) => {
    const results = await Promise.all(
      Array.from({ length: 50 }, () => store.claim(request(randomKey(), randomFingerprint()))),
    );

    assert.ok(results.every((r) => r.outcome === 'acquired' && r.generation === 1));
  });
}

function defineHousekeepingCases(test: Define): void {
  test('delete removes a record whatever its state and says whether one existed', async ({
    store,
    request,
  }) => {
    const key = randomKey();
    const owner = request(key, randomFingerprint());
    await store.claim(owner);

    const first = await store.delete(key);
    const second = await store.delete(key);

    assert.equal(first, true);
    assert.equal(second, false);
    assert.equal(await store.get(key), undefined);
    assert.equal(
      await store.heartbeat({ key, token: owner.token, leaseMs: LONG_MS, retentionMs: LONG_MS }),
      false,
    );
    assert.deepEqual(await store.claim(request(key, randomFingerprint())), {
      outcome: 'acquired',
      generation: 1,
    });
  });

  test('close() can be called twice', async ({ store }) => {
    await store.close();
    await store.close();
  });

  test('check() resolves on a correctly configured store', async ({ store }) => {
    await store.check?.();
  });

  test('defaultSecret(), where offered, returns the same non-empty secret on every call', async ({
    store,
  }) => {
    // Stores shared across hosts omit it; the engine then requires `secret`.
    if (!store.defaultSecret) return;
    const first = await store.defaultSecret();

    const second = await store.defaultSecret();

    assert.ok(typeof first === 'string' && first.length >= 16, 'a secret of at least 16 characters');
    assert.equal(second, first);
  });
}
