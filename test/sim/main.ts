/**
 * T52 outside the test runner: `npm run sim -- --seeds N --seed S [--variant V] [--trace] [--digest]`.
 * Runs seeds S .. S+N-1 and prints each failing seed as `SIM_SEED=<seed>` with its violations.
 * `--trace` prints the whole run of each failing seed (or of every seed when N is 1): the client
 * history, the executions and the store log. `--digest` prints each seed's history digest, `--coverage` what
 * the runs met (store calls by how they were answered, answers by code).
 */
import { parseArgs } from 'node:util';
import { runSimulation } from './run.js';
import { digestOf, type RunResult, type Variant } from './world.js';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1000' },
    seed: { type: 'string', default: '1' },
    variant: { type: 'string', default: 'correct' },
    trace: { type: 'boolean', default: false },
    digest: { type: 'boolean', default: false },
    coverage: { type: 'boolean', default: false },
  },
});
const count = Number(values.seeds);
const variant = values.variant as Variant;

function trace(run: RunResult): void {
  console.log(`--- seed ${run.seed} (${run.variant}), ${run.steps} steps`);
  for (const h of run.history) {
    const a = h.answer;
    const what = a
      ? `${a.status} ${a.code} replayed=${a.replayed} durable=${a.durable} ${a.body}`
      : (h.reason ?? '');
    console.log(
      `step ${h.step} ${h.type} client ${h.client} attempt ${h.attempt} on #${h.instance} ${h.principal} ${h.scope.slice(0, 8)} ${h.body} ${what}`,
    );
  }
  for (const e of run.executions) {
    console.log(
      `exec ${e.id} attempt ${e.attempt} on #${e.instance} ${e.scope.slice(0, 8)} gen ${e.generation} token ${e.claimToken} effect ${e.effect}`,
    );
  }
  for (const o of run.storeLog) {
    console.log(
      `store #${o.seq} ${o.op} ${o.key.slice(0, 8)} token ${o.token} at ${o.at} -> ${o.result}${o.generation ? ` gen ${o.generation}` : ''} (${o.answer}, instance ${o.instance})`,
    );
  }
}

const report = await runSimulation({
  first: Number(values.seed),
  count,
  variant,
  maxFailures: 10,
  onRun(run, violations) {
    if (values.digest) console.log(`digest ${run.seed} ${digestOf(run)}`);
    if (values.trace && (count === 1 || violations.length > 0)) trace(run);
  },
});
for (const failure of report.failures) {
  console.log(`SIM_SEED=${failure.seed} (${variant}):`);
  for (const v of failure.violations.slice(0, 10)) console.log(`  ${v.invariant} ${v.detail}`);
}
console.log(
  `${report.seeds} seeds in ${(report.ms / 1000).toFixed(1)} s (${Math.round(report.seedsPerSecond)} seeds/s), ` +
    `${report.failures.length} failing, ${report.executions} executions, ${report.takeovers} takeovers, ` +
    `${report.expiredResults} expired results, ` +
    `${report.nonDurableScopes} non-durable scopes`,
);
if (values.coverage) {
  for (const [name, n] of Object.entries(report.coverage).sort()) console.log(`  ${name}: ${n}`);
}
process.exitCode = report.failures.length > 0 ? 1 : 0;
