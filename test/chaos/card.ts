import { violations } from './checker.js';
import type { ChaosResult, PhaseLoad } from './run.js';

/** The report card of one run (store × SUT kind × mode), as plain text; every figure comes from the checker. */
export function formatCard(result: ChaosResult, commit = ''): string {
  const { options: o, verdicts: v, faulted, baseline } = result;
  const mode = !o.idempotency
    ? ' (idempotency OFF: negative control)'
    : !o.fencing
      ? ' (fencing OFF: negative control)'
      : '';
  const ratio = baseline && baseline.throughput > 0 ? faulted.throughput / baseline.throughput : undefined;
  const f = result.faults;
  const lines = [
    `== chaos report card: ${o.store}, ${o.sut ?? 'app'}${mode} ==`,
    `machine: ${process.arch}, Node ${process.versions.node}${commit ? `, commit ${commit}` : ''}; seed ${o.seed}`,
    '-- load held',
    `  ${v.scopes} keys, ${v.attempts} requests, ${o.workers} retrying clients × ${o.suts} server processes; lease ${o.leaseMs} ms`,
    `  clients: ${o.attemptTimeoutMs} ms per attempt, ${o.ejectMs > 0 ? `a failed server passed over for ${o.ejectMs} ms` : 'strict rotation over the servers'}`,
    baseline ? `  baseline (no faults) ${phase(baseline)}` : '  baseline: not run',
    `  under faults         ${phase(faulted)}`,
    ratio === undefined
      ? ''
      : `  throughput under faults / baseline: ${(ratio * 100).toFixed(0)} % (target ≥ 50 %: ${ratio >= 0.5 ? 'PASS' : 'MISS'})`,
    `  p99 healthy windows ${Math.round(result.healthy.p99)} ms, in fault windows ${Math.round(result.faultyWindows.p99)} ms; max ${Math.round(v.maxLatencyMs)} ms`,
    baseline && baseline.p99 > 0
      ? `  p99 healthy windows / baseline p99: ${(result.healthy.p99 / baseline.p99).toFixed(2)}× (target ≤ 2×: ${result.healthy.p99 <= 2 * baseline.p99 ? 'PASS' : 'MISS'})`
      : '',
    `  final phase: ${(result.finalPhaseMs / 1000).toFixed(1)} s`,
    '-- faults survived',
    `  kill -9 of a SUT ${f.kill}, SIGSTOP ${f.pause}, store kill -9 + restart ${f['store-restart']}, store cuts ${f.cut}, store latency ${f.latency}, restarts under faketime ±30 s ${f.skew}; SUT starts ${result.sutStarts}`,
    '-- nothing lost (each must be 0)',
    ...Object.entries(violations(v)).map(([name, n]) => `  ${String(n).padStart(6)}  ${name}`),
    '-- measured',
    `  executions ${v.executions}, effective ${v.effective}, handler re-runs absorbed by the downstream key ${v.rawDuplicateRuns}, keys held uncertain ${v.uncertainHeld}, non-durable answers lost ${v.lostNonDurable}`,
    ...(v.examples.length ? ['-- first violations', ...v.examples.map((e) => `  ${e}`)] : []),
  ];
  return lines.filter((l) => l !== '').join('\n');
}

function phase(p: PhaseLoad): string {
  return `${(p.durationMs / 1000).toFixed(0)} s: ${p.acknowledged}/${p.operations} operations acknowledged, ${p.throughput.toFixed(1)} ops/s; p50 ${Math.round(p.p50)} ms, p99 ${Math.round(p.p99)} ms`;
}

export function violationTotal(result: ChaosResult): number {
  return Object.values(violations(result.verdicts)).reduce((a, b) => a + b, 0);
}
