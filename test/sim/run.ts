import { check, type Violation } from './checker.js';
import { type RunResult, runSeed, type Variant } from './world.js';

export interface SimulationReport {
  seeds: number;
  ms: number;
  seedsPerSecond: number;
  failures: { seed: number; violations: Violation[] }[];
  executions: number;
  takeovers: number;
  /** Claims that acquired over an expired result. */
  expiredResults: number;
  nonDurableScopes: number;
  /** Counts of what the runs covered, for the report. */
  coverage: Record<string, number>;
}

/** Runs seeds first .. first+count-1 (stopping after maxFailures failing seeds). */
export async function runSimulation(options: {
  first: number;
  count: number;
  variant?: Variant;
  maxFailures?: number;
  /** Called with each run and its violations (for traces and digests). */
  onRun?: (run: RunResult, violations: Violation[]) => void;
}): Promise<SimulationReport> {
  const started = performance.now();
  const report: SimulationReport = {
    seeds: 0,
    ms: 0,
    seedsPerSecond: 0,
    failures: [],
    executions: 0,
    takeovers: 0,
    expiredResults: 0,
    nonDurableScopes: 0,
    coverage: {},
  };
  const count = (name: string, n = 1): void => {
    report.coverage[name] = (report.coverage[name] ?? 0) + n;
  };
  for (let i = 0; i < options.count; i++) {
    const seed = options.first + i;
    const run = await runSeed(seed, options.variant ?? 'correct');
    const verdict = check(run);
    options.onRun?.(run, verdict.violations);
    report.seeds++;
    report.executions += verdict.executions;
    report.takeovers += verdict.takeovers;
    report.expiredResults += verdict.expiredResults;
    report.nonDurableScopes += verdict.nonDurableScopes;
    for (const op of run.storeLog) count(`${op.op}:${op.answer}`);
    for (const point of run.crashPoints) count(`crash at: ${point}`);
    for (const h of run.history) {
      if (h.type === 'fail') count('crash-interrupted attempts');
      if (h.answer) count(`answer:${h.answer.code}${h.answer.durable ? '' : ' (non-durable)'}`);
    }
    if (verdict.violations.length > 0) {
      report.failures.push({ seed, violations: verdict.violations });
      if (report.failures.length >= (options.maxFailures ?? 1)) break;
    }
  }
  report.ms = performance.now() - started;
  report.seedsPerSecond = report.seeds / (report.ms / 1000);
  return report;
}
