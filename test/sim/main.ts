/**
 * T52 outside the test runner: `npm run sim -- --seeds N --seed S [--variant V]`. Runs seeds
 * S .. S+N-1 and prints each failing seed as `SIM_SEED=<seed>` with its violations.
 */
import { parseArgs } from 'node:util';
import { runSimulation } from './run.js';
import type { StoreVariant } from './sim-store.js';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1000' },
    seed: { type: 'string', default: '1' },
    variant: { type: 'string', default: 'correct' },
    verbose: { type: 'boolean', default: false },
  },
});
const report = await runSimulation({
  first: Number(values.seed),
  count: Number(values.seeds),
  variant: values.variant as StoreVariant,
  maxFailures: 10,
});
for (const failure of report.failures) {
  console.log(`SIM_SEED=${failure.seed} (${values.variant}):`);
  for (const v of failure.violations.slice(0, values.verbose ? 50 : 5))
    console.log(`  ${v.invariant} ${v.detail}`);
}
console.log(
  `${report.seeds} seeds in ${(report.ms / 1000).toFixed(1)} s (${Math.round(report.seedsPerSecond)} seeds/s), ` +
    `${report.failures.length} failing, ${report.executions} executions, ${report.takeovers} takeovers, ` +
    `${report.nonDurableScopes} non-durable scopes`,
);
process.exitCode = report.failures.length > 0 ? 1 : 0;
