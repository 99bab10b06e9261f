import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { createIdempotency, memoryStore } from '../../src/index.js';
import {
  FLOODER,
  type FloodResult,
  type FloodSettings,
  percentile,
  recordsPerPartition,
  runFlood,
} from '../support/fuzz-flood.js';
import { badInputReport } from '../support/fuzz-report.js';
import { tempSqliteStores } from '../support/temp-sqlite.js';

/*
 * T48 unique-key flood, scaled to a shared 2-core machine: one principal sends a fresh key with
 * every request (bounded: 20,000 requests or 15 s) while five others send ordinary traffic. The
 * caps that exist: the memory store's live records per principal (maxEntriesPerPrincipal) and
 * the engine's keyed requests running at once per principal (maxInFlightPerPrincipal), both
 * answering 429 capacity with Retry-After to that principal only. The durable stores have no
 * per-principal record cap (docs/guarantees.md, S8): there a flood is bounded by the in-flight
 * cap and by a rate limiter in front.
 */

const CAPACITY = 'urn:idemkit:problem:capacity';
/** A liveness bound for the others' p99, not a speed target. */
const OTHERS_P99_MS = 2_000;

const report = badInputReport('flood', null, {
  'flood-requests':
    "a flooder's unique-key requests: run within its share, 429 capacity with Retry-After beyond it",
  'other-principals-requests':
    'requests of other principals during the flood: served (and replayed), never refused',
});

const flood = (settings: Partial<FloodSettings> & Pick<FloodSettings, 'store'>): Promise<FloodResult> =>
  runFlood({
    upstreamDelayMs: 0,
    floodConcurrency: 16,
    floodMaxRequests: 20_000,
    floodMaxMs: 15_000,
    others: 5,
    otherRequests: 80,
    ...settings,
  });

/**
 * What T48 demands of one run, as a list of violations: the flooder gets its answer or 429
 * capacity with Retry-After, never a 5xx; the others are served, their retries replay, none is
 * refused, and their p99 stays under the liveness bound.
 */
function violations(result: FloodResult, tally = false): string[] {
  const found: string[] = [];
  for (const answer of result.flood) {
    const correct =
      answer.status === 201 ||
      (answer.status === 429 && answer.problemType === CAPACITY && answer.retryAfter !== undefined);
    if (tally) report.count('flood-requests', correct);
    if (!correct) found.push(`flooder got ${answer.status} ${answer.problemType ?? ''}`);
  }
  result.others.forEach((answer, i) => {
    const retry = result.otherRetries[i] === true;
    const correct = answer.status === 201 && answer.replayed === retry;
    if (tally) report.count('other-principals-requests', correct);
    if (!correct)
      found.push(`another principal got ${answer.status} ${answer.problemType ?? ''} (retry ${retry})`);
  });
  const p99 = percentile(
    result.others.map((a) => a.ms),
    99,
  );
  if (p99 >= OTHERS_P99_MS) found.push(`the others' p99 was ${p99.toFixed(0)} ms`);
  return [...new Set(found)];
}

function summary(result: FloodResult): string {
  const statuses = new Map<number, number>();
  for (const a of result.flood) statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
  const p = (q: number) =>
    percentile(
      result.others.map((a) => a.ms),
      q,
    ).toFixed(1);
  return (
    `flooder: ${result.flood.length} requests in ${result.floodMs.toFixed(0)} ms, statuses ${JSON.stringify([...statuses])}; ` +
    `others: ${result.others.length} requests in ${result.othersMs.toFixed(0)} ms, p50 ${p(50)} ms, p99 ${p(99)} ms`
  );
}

describe('T48 unique-key flood at the gateway', () => {
  it('memory store: the flooder holds at most its share of records and then gets 429; the others are served and never refused', async (t) => {
    const CAP = 200;
    const baseline = await flood({ store: memoryStore({ onWarning() {} }), floodConcurrency: 0 });
    assert.deepEqual(violations(baseline), []);
    t.diagnostic(`baseline without a flood: ${summary(baseline)}`);

    const store = memoryStore({ onWarning() {}, maxEntriesPerPrincipal: CAP });
    const counted = recordsPerPartition(store);
    const result = await flood({ store: counted.store });
    t.diagnostic(`flood: ${summary(result)}; the most records one principal held: ${counted.max()}`);
    assert.deepEqual(violations(result, true), []);
    const ran = result.flood.filter((a) => a.status === 201).length;
    assert.equal(ran, CAP, 'the flooder runs exactly its share');
    assert.ok(result.flood.length - ran > 1_000, `the flood went on past its share (${result.flood.length})`);
    assert.equal(counted.max(), CAP, 'no principal ever held more than its share');
    assert.equal(store.stats().records, CAP + result.othersCompletedKeys, 'nothing else was recorded');
    assert.ok(result.floodMs >= result.othersMs, 'the flood lasted as long as the others sent');
    await store.close();
  });

  it('the same checks catch a store without a per-principal share (negative control): the flooder fills it for everyone', async () => {
    // The share turned off (maxEntriesPerPrincipal = maxEntries): the flooder takes every record
    // and the others meet a full store (503), which is what the cap exists to prevent.
    const store = memoryStore({ onWarning() {}, maxEntries: 300, maxEntriesPerPrincipal: 300 });
    const result = await flood({ store, floodMaxMs: 5_000 });
    const found = violations(result);
    assert.ok(
      found.some((v) => v.startsWith('another principal got 503')),
      `the flood must be seen to refuse the others: ${JSON.stringify(found)}`,
    );
    await store.close();
  });

  it('SQLite (no record share): behind the in-flight cap the flooder gets 429 capacity with Retry-After, the others are never refused', async (t) => {
    const { store, cleanup } = tempSqliteStores('idemkit-flood-')();
    try {
      const result = await flood({
        store,
        engine: { maxInFlightPerPrincipal: 8 },
        upstreamDelayMs: 50,
        floodConcurrency: 32,
        floodMaxMs: 6_000,
        otherRequests: 40,
      });
      const ran = result.flood.filter((a) => a.status === 201).length;
      t.diagnostic(
        `flood: ${summary(result)}; the upstream ran at most ${result.maxUpstreamConcurrency.get(FLOODER)} of the flooder's requests at once; ` +
          `the store took ${ran} flooder records (no per-principal share on SQLite)`,
      );
      assert.deepEqual(violations(result, true), []);
      assert.ok(result.flood.length - ran > 1_000, 'most of the flood was refused');
    } finally {
      await cleanup?.();
    }
  });

  it('a burst of one principal: at most maxInFlightPerPrincipal of its requests are admitted at once', async () => {
    const idem = createIdempotency({
      store: memoryStore({ onWarning() {} }),
      maxInFlightPerPrincipal: 8,
      onWarning() {},
    });
    const decisions = await Promise.all(
      Array.from({ length: 32 }, () =>
        idem.begin({
          method: 'POST',
          path: '/orders',
          headers: { 'idempotency-key': randomUUID(), authorization: FLOODER },
          body: new Uint8Array(0),
        }),
      ),
    );
    for (const d of decisions)
      if (d.kind === 'execute') await d.commit({ status: 201, headers: [], body: new Uint8Array(0) });
    await idem.close();
    const admitted = decisions.filter((d) => d.kind === 'execute').length;
    assert.ok(admitted <= 8, `${admitted} of 32 simultaneous requests were admitted under a cap of 8`);
    assert.ok(decisions.every((d) => d.kind === 'execute' || (d.kind === 'reject' && d.code === 'capacity')));
  });
});
