import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { check } from './checker.js';
import { runSimulation } from './run.js';
import { digestOf, RETENTION_MS, runSeed } from './world.js';

/*
 * T52 (docs/guarantees.md): the engine core over a simulated store, clock and network, many
 * seeds per run. SIM_SEEDS sets how many (default 100,000); SIM_SEED=<n> runs that one seed only
 * (a failure prints the line to reproduce it). `npm run sim -- --seeds N --seed S` runs it outside
 * the test runner.
 */
const single = process.env.SIM_SEED === undefined ? undefined : Number(process.env.SIM_SEED);
const seeds = single === undefined ? Number(process.env.SIM_SEEDS ?? 100_000) : 1;
const first = single ?? 1;

describe('T52 deterministic simulation of the engine over a faulty store, clock and network', () => {
  it(`${seeds} seeds from ${first}: no invariant violated (I1-I9, S8)`, {
    timeout: 900_000,
  }, async () => {
    const report = await runSimulation({ first, count: seeds, maxFailures: 5 });
    const lines = report.failures.map(
      (f) =>
        `SIM_SEED=${f.seed}\n${f.violations
          .slice(0, 8)
          .map((v) => `  ${v.invariant} ${v.detail}`)
          .join('\n')}`,
    );
    console.log(
      `# T52: ${report.seeds} seeds, ${Math.round(report.seedsPerSecond)} seeds/s, ${report.executions} executions, ` +
        `${report.takeovers} takeovers, ${report.expiredResults} expired results, ` +
        `${report.nonDurableScopes} non-durable scopes`,
    );
    assert.equal(report.failures.length, 0, `violations (replay with SIM_SEED=<seed>):\n${lines.join('\n')}`);
    assert.equal(report.seeds, seeds);
    if (single === undefined && seeds >= 20_000) {
      // Not vacuous: the faults the spec names were all met, many times.
      const c = report.coverage;
      for (const name of [
        'claim:failed',
        'claim:ack-lost',
        'claim:hang',
        'claim:crashed',
        'complete:ack-lost',
        'complete:hang',
        'heartbeat:ack',
        'release:ack',
        'markUncertain:ack',
        'crash-interrupted attempts',
        'answer:replay',
        'answer:key-reused',
        'answer:in-progress',
        'answer:lease-lost',
        'answer:capacity',
        'answer:outcome-uncertain',
        'answer:store (non-durable)',
        // Crashes cut every await point: each store call before and after it applied, the handler.
        ...['claim', 'heartbeat', 'complete', 'release', 'markUncertain'].flatMap((op) => [
          `crash at: ${op} applied`,
          `crash at: ${op} not applied`,
        ]),
        'crash at: before effect',
        'crash at: before commit',
      ]) {
        assert.ok((c[name] ?? 0) > 0, `${name} never happened: ${JSON.stringify(c)}`);
      }
      assert.ok(report.takeovers > 0, 'no takeover happened');
      assert.ok(report.expiredResults > 0, 'no result expired');
    }
  });

  it('a seed replays exactly: the same seed gives the same history, another seed another one', async () => {
    for (const seed of [1, 42, 4_242, 99_999]) {
      const a = await runSeed(seed);
      const b = await runSeed(seed);
      assert.equal(digestOf(a), digestOf(b), `seed ${seed} ran differently twice`);
      assert.ok(a.history.length > 0);
    }
    const digests = new Set<string>();
    for (let seed = 1; seed <= 50; seed++) digests.add(digestOf(await runSeed(seed)));
    assert.ok(digests.size > 45, `only ${digests.size} different histories from 50 seeds`);
  });

  it('a seed reproduces in a fresh process, whatever ran before it in this one', async () => {
    // Seeds 770..777 here (so earlier seeds have left whatever they leave), 777 alone there.
    let here = '';
    await runSimulation({
      first: 770,
      count: 8,
      onRun: (run) => {
        here = digestOf(run);
      },
    });
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'test/sim/main.ts', '--seeds', '1', '--seed', '777', '--digest'],
      { cwd: new URL('../..', import.meta.url) },
    );
    assert.match(stdout, new RegExp(`^digest 777 ${here}$`, 'm'));
  });

  it('negative control: the engine with failOpen runs handlers without a claim, and I9 catches it', async () => {
    const report = await runSimulation({ first: 1, count: 100, variant: 'fail-open' });
    assert.equal(report.failures.length, 1, 'failOpen went unnoticed for 100 seeds');
    const violations = report.failures[0]?.violations ?? [];
    assert.ok(
      violations.some((v) => v.invariant === 'I9'),
      JSON.stringify(violations),
    );
  });

  it('negative control: a claim that ignores a live in-progress record is caught (I1)', async () => {
    const report = await runSimulation({ first: 1, count: 50, variant: 'claim-ignores-in-progress' });
    assert.equal(report.failures.length, 1, 'the broken claim went unnoticed for 50 seeds');
    const violations = report.failures[0]?.violations ?? [];
    assert.ok(
      violations.some((v) => v.invariant === 'I1'),
      JSON.stringify(violations),
    );
  });

  it('negative control: a completion that does not check the owner token is caught (I8)', async () => {
    const report = await runSimulation({ first: 1, count: 500, variant: 'complete-ignores-owner' });
    assert.equal(report.failures.length, 1, 'the unfenced completion went unnoticed for 500 seeds');
    const violations = report.failures[0]?.violations ?? [];
    assert.ok(
      violations.some((v) => v.invariant === 'I8'),
      JSON.stringify(violations),
    );
  });

  it('the checker sees a lost acknowledgement, a second original result and a leaked place (I7, I1, I3, S8)', async () => {
    // Tamper with a good run after the fact: the store forgets the result it answered.
    for (let seed = 1; seed <= 200; seed++) {
      const run = await runSeed(seed);
      const answered = run.history.find((h) => h.answer?.status === 201);
      if (!answered || answered.answer?.durable === false || run.retentionMs !== RETENTION_MS) continue;
      run.finalRecords.delete(answered.scope);
      const ok = answered.answer as NonNullable<typeof answered.answer>;
      run.history.push({ ...answered, attempt: 1e6, answer: { ...ok, status: 200 } });
      // And an instance refuses a caller for capacity while none of its places is taken.
      run.history.push({
        ...answered,
        attempt: 1e6 + 1,
        answer: { ...ok, status: 429, code: 'capacity' },
        inFlightPeers: 0,
      });
      const kinds = new Set(check(run).violations.map((v) => v.invariant));
      for (const kind of ['I7', 'I1', 'I3', 'S8'] as const) assert.ok(kinds.has(kind), [...kinds].join(','));
      return;
    }
    assert.fail('no seed in 1..200 answered a durable 201');
  });
});
