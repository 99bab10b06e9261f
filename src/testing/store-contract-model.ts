import assert from 'node:assert/strict';
import type { Arbitrary, AsyncCommand } from 'fast-check';
import { StoreMisconfiguredError } from '../core/errors.js';
import { type IdempotencyStore, RecordState, type StoredRecord, type StoredResponse } from '../core/store.js';
import {
  copyResponse,
  RESPONSES,
  randomFingerprint,
  randomKey,
  randomToken,
  responseView,
  sweepAll,
} from './store-contract-fixtures.js';

/*
 * T51 (docs/guarantees.md): random sequences of store calls compared, call by call, with a
 * tiny pure model of the claim predicate and the owner-token CAS in types.ts.
 */

type FastCheck = typeof import('fast-check');

interface ModelRecord {
  state: RecordState;
  fingerprint: string;
  generation: number;
  /** Model times count from the start of the run; the store's are `t0` later. */
  leaseUntil: number;
  expiresAt: number;
  completedAt: number | null;
  token: string | null;
  response?: StoredResponse;
}

interface Model {
  now: number;
  records: Map<string, ModelRecord>;
  /** Owner tokens the client still remembers, live or fenced; `crash` forgets one. */
  attempts: { key: string; token: string }[];
}

interface Real {
  store: IdempotencyStore;
  clock: { advance(ms: number): void } | undefined;
  /** Store time at model time 0; known only with an injected clock. */
  t0: number | undefined;
  keys: string[];
  fingerprints: string[];
}

type StoreCommand = AsyncCommand<Model, Real>;

export interface StoreModelOptions {
  name: string;
  store: IdempotencyStore;
  clock: { advance(ms: number): void } | undefined;
  runs: number;
  replay: { seed: number; path?: string } | undefined;
}

const KEYS = 2;
const RESPONSE_LIST: StoredResponse[] = [RESPONSES.binary, RESPONSES.noContent, RESPONSES.omitted];

/** The claim predicate of types.ts, verbatim. */
function takeable(record: ModelRecord, fingerprint: string, now: number): boolean {
  return (
    record.state === RecordState.Released ||
    record.expiresAt <= now ||
    (record.state === RecordState.InProgress &&
      record.leaseUntil <= now &&
      record.fingerprint === fingerprint)
  );
}

function owned(model: Model, key: string, token: string): ModelRecord | undefined {
  const record = model.records.get(key);
  return record?.state === RecordState.InProgress && record.token === token ? record : undefined;
}

/**
 * A record past expiresAt "may be swept" (types.ts) at any moment: by sweep(), by a lazy sweep
 * inside another call (memory), or by a TTL (Redis). The model accepts either state for it, and
 * forgets it once the store shows it gone.
 */
function expired(model: Model, key: string): boolean {
  const record = model.records.get(key);
  return record !== undefined && record.expiresAt <= model.now;
}

function expectRecord(
  real: Real,
  key: string,
  actual: StoredRecord | undefined,
  expected: ModelRecord | undefined,
) {
  if (!expected) {
    assert.equal(actual, undefined, `${key}: the store has a record the model does not`);
    return;
  }
  assert.ok(actual, `${key}: the store lost a record the model has`);
  assert.deepEqual(
    { key: actual.key, state: actual.state, fingerprint: actual.fingerprint, generation: actual.generation },
    { key, state: expected.state, fingerprint: expected.fingerprint, generation: expected.generation },
  );
  if (real.t0 !== undefined) {
    assert.equal(actual.expiresAt, real.t0 + expected.expiresAt, `${key}: expiresAt`);
    if (expected.state === RecordState.InProgress) {
      assert.equal(actual.leaseUntil, real.t0 + expected.leaseUntil, `${key}: leaseUntil`);
    }
    if (expected.state === RecordState.Completed || expected.state === RecordState.Uncertain) {
      assert.equal(actual.completedAt, real.t0 + (expected.completedAt ?? Number.NaN), `${key}: completedAt`);
    }
  }
  if (expected.state === RecordState.InProgress)
    assert.equal(actual.completedAt, null, `${key}: completedAt`);
  const response = expected.state === RecordState.Completed ? expected.response : undefined;
  assert.deepEqual(responseView(actual.response), responseView(response), `${key}: response`);
}

async function verify(model: Model, real: Real, key: string): Promise<void> {
  const actual = await real.store.get(key);
  if (actual === undefined && expired(model, key)) model.records.delete(key);
  expectRecord(real, key, actual, model.records.get(key));
}

function commandArbitraries(fc: FastCheck, withClock: boolean): Arbitrary<StoreCommand>[] {
  // With an injected clock the durations are small against the clock steps, so leases lapse and
  // records expire; on store time nothing may expire during a run.
  const lease = withClock ? fc.constantFrom(100, 1_000) : fc.constant(60_000);
  const retention = withClock ? fc.constantFrom(100, 2_000) : fc.constant(60_000);
  const keyIndex = fc.nat(KEYS - 1);
  const attempt = fc.nat(20);

  const claim = fc.record({ k: keyIndex, f: fc.nat(1), leaseMs: lease, retentionMs: retention }).map(
    ({ k, f, leaseMs, retentionMs }): StoreCommand => ({
      check: () => true,
      async run(model, real) {
        const key = real.keys[k] as string;
        const fingerprint = real.fingerprints[f] as string;
        const token = randomToken();
        const result = await real.store.claim({ key, fingerprint, token, leaseMs, retentionMs });
        if (result.outcome === 'acquired' && result.generation === 1 && expired(model, key)) {
          model.records.delete(key);
        }
        const existing = model.records.get(key);
        if (existing && !takeable(existing, fingerprint, model.now)) {
          const outcome = existing.state === RecordState.InProgress ? 'in_progress' : 'completed';
          assert.equal(result.outcome, outcome, `claim ${key}`);
          expectRecord(real, key, (result as { record: StoredRecord }).record, existing);
          return;
        }
        const generation = (existing?.generation ?? 0) + 1;
        const { takeover, ...acquired } = result as { takeover?: boolean };
        assert.deepEqual(acquired, { outcome: 'acquired', generation }, `claim ${key}`);
        if (takeover !== undefined) {
          assert.equal(takeover, existing?.state === RecordState.InProgress, `claim ${key}: takeover flag`);
        }
        model.records.set(key, {
          state: RecordState.InProgress,
          fingerprint,
          generation,
          leaseUntil: model.now + leaseMs,
          expiresAt: model.now + leaseMs + retentionMs,
          completedAt: null,
          token,
        });
        model.attempts.push({ key, token });
        await verify(model, real, key);
      },
      toString: () => `claim(k${k}, fp${f}, lease ${leaseMs}, retention ${retentionMs})`,
    }),
  );

  /** A write by a remembered attempt: the CAS on the owner token decides. */
  function ownerWrite(
    name: string,
    extra: Arbitrary<{ leaseMs: number; r: number }>,
    call: (
      real: Real,
      key: string,
      token: string,
      args: { leaseMs: number; r: number; retentionMs: number },
    ) => Promise<boolean>,
    apply: (
      record: ModelRecord,
      now: number,
      args: { leaseMs: number; r: number; retentionMs: number },
    ) => void,
  ): Arbitrary<StoreCommand> {
    return fc.record({ a: attempt, retentionMs: retention, extra }).map(
      ({ a, retentionMs, extra: more }): StoreCommand => ({
        check: (model) => model.attempts.length > 0,
        async run(model, real) {
          const { key, token } = model.attempts[a % model.attempts.length] as { key: string; token: string };
          const args = { ...more, retentionMs };
          const result = await call(real, key, token, args);
          // The owner of an expired record may find it swept: the write is then refused.
          if (!result && expired(model, key) && owned(model, key, token)) model.records.delete(key);
          const record = owned(model, key, token);
          assert.equal(result, record !== undefined, `${name} ${key}`);
          if (record) {
            apply(record, model.now, args);
            if (record.state !== RecordState.InProgress) record.token = null;
          }
          await verify(model, real, key);
        },
        toString: () => `${name}(attempt ${a}, ${JSON.stringify(more)}, retention ${retentionMs})`,
      }),
    );
  }

  const none = fc.constant({ leaseMs: 0, r: 0 });
  // Claims appear three times and clock steps twice: most divergences need a claim after time passed.
  const commands = [
    claim,
    claim,
    claim,
    ownerWrite(
      'heartbeat',
      lease.map((leaseMs) => ({ leaseMs, r: 0 })),
      (real, key, token, { leaseMs, retentionMs }) =>
        real.store.heartbeat({ key, token, leaseMs, retentionMs }),
      (record, now, { leaseMs, retentionMs }) => {
        record.leaseUntil = now + leaseMs;
        record.expiresAt = record.leaseUntil + retentionMs;
      },
    ),
    ownerWrite(
      'complete',
      fc.nat(RESPONSE_LIST.length - 1).map((r) => ({ leaseMs: 0, r })),
      (real, key, token, { r, retentionMs }) =>
        real.store.complete({
          key,
          token,
          retentionMs,
          response: copyResponse(RESPONSE_LIST[r] as StoredResponse),
        }),
      (record, now, { r, retentionMs }) => {
        Object.assign(record, {
          state: RecordState.Completed,
          completedAt: now,
          expiresAt: now + retentionMs,
        });
        record.response = RESPONSE_LIST[r] as StoredResponse;
      },
    ),
    ownerWrite(
      'release',
      none,
      (real, key, token, { retentionMs }) => real.store.release({ key, token, retentionMs }),
      (record, now, { retentionMs }) => {
        Object.assign(record, { state: RecordState.Released, expiresAt: now + retentionMs });
      },
    ),
    ownerWrite(
      'markUncertain',
      none,
      (real, key, token, { retentionMs }) => real.store.markUncertain({ key, token, retentionMs }),
      (record, now, { retentionMs }) => {
        Object.assign(record, {
          state: RecordState.Uncertain,
          completedAt: now,
          expiresAt: now + retentionMs,
        });
      },
    ),
    attempt.map(
      (a): StoreCommand => ({
        check: (model) => model.attempts.length > 0,
        async run(model) {
          // The owner process dies: nobody will heartbeat, complete or release this token.
          model.attempts.splice(a % model.attempts.length, 1);
        },
        toString: () => `crash(attempt ${a})`,
      }),
    ),
    fc.constant<StoreCommand>({
      check: () => true,
      async run(model, real) {
        let expected = 0;
        for (const key of real.keys) {
          if (!expired(model, key)) continue;
          if (await real.store.get(key)) expected++;
          model.records.delete(key);
        }
        // Other runs' records may be swept too, so the count is a lower bound.
        const deleted = await sweepAll(real.store, 7);
        assert.ok(deleted >= expected, `sweep deleted ${deleted}, the model expected at least ${expected}`);
        for (const key of real.keys) await verify(model, real, key);
      },
      toString: () => 'sweep()',
    }),
    keyIndex.map(
      (k): StoreCommand => ({
        check: () => true,
        async run(model, real) {
          const key = real.keys[k] as string;
          const deleted = await real.store.delete(key);
          if (!deleted && expired(model, key)) model.records.delete(key);
          assert.equal(deleted, model.records.delete(key), `delete ${key}`);
          await verify(model, real, key);
        },
        toString: () => `delete(k${k})`,
      }),
    ),
  ];
  if (withClock) {
    const advance = fc.constantFrom(50, 100, 1_000, 3_000).map(
      (ms): StoreCommand => ({
        check: () => true,
        async run(model, real) {
          model.now += ms;
          real.clock?.advance(ms);
          for (const key of real.keys) await verify(model, real, key);
        },
        toString: () => `advanceClock(${ms})`,
      }),
    );
    commands.push(advance, advance);
  }
  return commands;
}

async function loadFastCheck(): Promise<FastCheck> {
  try {
    return await import('fast-check');
  } catch (error) {
    throw new StoreMisconfiguredError(
      'the model-based store contract test needs fast-check: npm install --save-dev fast-check',
      { cause: error },
    );
  }
}

/** Learns the store time at model time 0 from a probe record (injected clock only). */
async function storeNow(store: IdempotencyStore): Promise<number> {
  const key = randomKey('t0');
  await store.claim({
    key,
    fingerprint: randomFingerprint(),
    token: randomToken(),
    leaseMs: 1,
    retentionMs: 1,
  });
  const record = await store.get(key);
  await store.delete(key);
  assert.ok(record, 'a just-claimed probe record is readable');
  return record.createdAt;
}

/** Runs T51 on one store; prints the seed and path of a failure so it can be replayed. */
export async function runStoreModel(options: StoreModelOptions): Promise<void> {
  const fc = await loadFastCheck();
  const { store, clock } = options;
  const property = fc.asyncProperty(
    fc.commands(commandArbitraries(fc, clock !== undefined), { maxCommands: 50, size: 'max' }),
    (cmds) =>
      fc.asyncModelRun(async () => {
        const run = randomKey('model');
        const real: Real = {
          store,
          clock,
          t0: clock ? await storeNow(store) : undefined,
          keys: Array.from({ length: KEYS }, (_, i) => `${run}:${i}`),
          fingerprints: [randomFingerprint(), randomFingerprint()],
        };
        const model: Model = { now: 0, records: new Map(), attempts: [] };
        return { model, real };
      }, cmds),
  );
  const details = await fc.check(property, {
    numRuns: options.runs,
    ...(options.replay && { seed: options.replay.seed, endOnFailure: true }),
    ...(options.replay?.path !== undefined && { path: options.replay.path }),
  });
  if (details.failed) {
    console.error(
      `idemkit store contract: ${options.name}: the model-based run failed; replay it with ` +
        `modelReplay: { seed: ${details.seed}, path: '${details.counterexamplePath}' }`,
    );
    const report = (await fc.asyncDefaultReportMessage(details)) ?? `seed ${details.seed}`;
    throw new Error(`${report}\n${String(details.errorInstance)}`, { cause: details.errorInstance });
  }
}
