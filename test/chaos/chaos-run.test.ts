import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatCard, violationTotal } from './card.js';
import { violations } from './checker.js';
import type { ChaosStoreKind } from './config.js';
import { CHAOS_DEFAULTS, type ChaosResult, runChaos } from './run.js';

/*
 * T54, the every-run version: a short chaos run per store (a fault-free baseline, then kill -9,
 * SIGSTOP, store restarts, store cuts and latency through the TCP proxy, restarts under
 * faketime ±30 s), the final phase and the checker. Every invariant must hold; the card is
 * printed as a diagnostic. The gateway (`idemkit gateway` in front of an upstream app) runs the
 * same on PostgreSQL, with its own negative control. `npm run chaos -- --minutes 20 --store <store>` is the full run the
 * report card in docs/reliability.md comes from. The seed is printed; CHAOS_SEED replays it.
 */

const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);
const SHORT = { baselineMs: 8_000, faultMs: 30_000 };

async function shortRun(
  store: ChaosStoreKind,
  overrides: Partial<Parameters<typeof runChaos>[0]> = {},
): Promise<ChaosResult> {
  return runChaos({
    ...CHAOS_DEFAULTS,
    ...SHORT,
    store,
    suts: store === 'sqlite' ? 4 : CHAOS_DEFAULTS.suts,
    // Bounded in count as well as in time.
    operationsPerWorker: 2_000,
    // The harshest clients: strict rotation and long attempts, so half of all attempts land on a
    // faulted server (the full runs pass a failed server over, as a load balancer would).
    attemptTimeoutMs: 5_000,
    ejectMs: 0,
    seed: SEED,
    ...overrides,
  });
}

/** Every invariant held, load was acknowledged, and faults of several kinds were injected. */
function assertHeld(result: ChaosResult): void {
  assert.deepEqual(
    Object.entries(violations(result.verdicts)).filter(([, n]) => n > 0),
    [],
    `violations (CHAOS_SEED=${SEED}): ${result.verdicts.examples.join('; ')}`,
  );
  assert.ok(result.faulted.acknowledged > 100, `${result.faulted.acknowledged} operations acknowledged`);
  // The nemesis draws kinds from a shuffled bag: three faults are three different kinds.
  const kinds = Object.values(result.faults).filter((n) => n > 0).length;
  assert.ok(kinds >= 3, `faults of ${kinds} kinds: ${JSON.stringify(result.faults)}`);
}

describe(`T54 short chaos run per store (CHAOS_SEED=${SEED})`, () => {
  for (const store of ['sqlite', 'postgres', 'redis', 'pg-txn', 'dynamodb'] as const) {
    it(`${store}: every invariant holds through kill -9, pauses, store faults and clock skew`, {
      timeout: 240_000,
    }, async (t) => {
      const result = await shortRun(store);
      t.diagnostic(formatCard(result));
      assertHeld(result);
    });
  }

  it('postgres, gateway SUT: every invariant holds with idemkit gateway in front of the app', {
    timeout: 240_000,
  }, async (t) => {
    const result = await shortRun('postgres', { sut: 'gateway' });
    t.diagnostic(formatCard(result));
    assertHeld(result);
    // The ledger joined the gateway's forwards to its claims, and ambiguous operations were held.
    assert.ok(result.verdicts.executions > 100, `${result.verdicts.executions} executions`);
    assert.ok(result.verdicts.uncertainHeld > 0, 'no ambiguous operation was held uncertain');
  });

  it('negative control: the same run without idempotency shows duplicate executions', {
    timeout: 240_000,
  }, async (t) => {
    const result = await shortRun('sqlite', { idempotency: false, baselineMs: 0, faultMs: 15_000 });
    t.diagnostic(formatCard(result));
    assert.ok(result.verdicts.duplicateExecutions > 0, JSON.stringify(violations(result.verdicts)));
    assert.ok(violationTotal(result) > 0);
  });

  it('negative control: the gateway as a pure proxy (no method covered) shows duplicate executions', {
    timeout: 240_000,
  }, async (t) => {
    const result = await shortRun('postgres', {
      sut: 'gateway',
      idempotency: false,
      baselineMs: 0,
      faultMs: 15_000,
    });
    t.diagnostic(formatCard(result));
    assert.ok(result.verdicts.duplicateExecutions > 0, JSON.stringify(violations(result.verdicts)));
    assert.ok(violationTotal(result) > 0);
  });
});
