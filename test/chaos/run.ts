import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../support/redis-server.js';
import { check, groupBy, readRun, type Verdicts } from './checker.js';
import type { WorkerSettings } from './client-worker.js';
import {
  type ChaosStoreKind,
  files,
  monoMs,
  type SutKind,
  type SutSettings,
  type UpstreamSettings,
} from './config.js';
import { RecordingClient } from './history.js';
import { ALL_FAULTS, type FaultCounts, type FaultKind, runNemesis } from './nemesis.js';
import { ChildRegistry, SutProcess } from './processes.js';
import { openStoreEnv } from './stores.js';

/*
 * One chaos run (T54): the store, the downstream, the SUTs behind their store proxies, the
 * retrying client workers (with gateway SUTs, also the upstream app they forward to, never faulted
 * either); a fault-free baseline phase, then the faulted phase with the
 * nemesis; then everything heals, the final phase retries every unresolved key until it has a
 * final answer (60 s at most), a verify pass re-sends every acknowledged one (it must replay),
 * and the checker judges the files. Every child is stopped by PID at the end, failure or not.
 */

export interface ChaosOptions {
  store: ChaosStoreKind;
  /** The servers under test: the app (sut.ts) or the gateway (sut-gateway.ts). @default 'app' */
  sut?: SutKind;
  /** Fault-free phase, for the throughput baseline; 0 skips it. */
  baselineMs: number;
  /** Faulted phase. */
  faultMs: number;
  workers: number;
  suts: number;
  /** Upper bound on operations per worker and phase (keeps CI runs bounded in count too). */
  operationsPerWorker: number;
  faults: readonly FaultKind[];
  intervalMs: number;
  leaseMs: number;
  storeTimeoutMs: number;
  /** The load clients' timeout per attempt. */
  attemptTimeoutMs: number;
  /** How long a load client passes over a server that failed it (outlier ejection); 0: never. */
  ejectMs: number;
  idempotency: boolean;
  fencing: boolean;
  seed: number;
  /** Keep the run folder (its JSONL files) for inspection. */
  keep?: boolean;
  onProgress?: (line: string) => void;
}

export interface PhaseLoad {
  durationMs: number;
  operations: number;
  acknowledged: number;
  attempts: number;
  throughput: number;
  p50: number;
  p99: number;
  max: number;
}

export interface ChaosResult {
  options: ChaosOptions;
  verdicts: Verdicts;
  baseline: PhaseLoad | undefined;
  faulted: PhaseLoad;
  /** Attempts of the faulted phase that started outside every fault window, and inside one. */
  healthy: { p99: number };
  faultyWindows: { p99: number };
  faults: FaultCounts;
  sutStarts: number;
  finalPhaseMs: number;
  dir: string;
}

export const CHAOS_DEFAULTS = {
  workers: 8,
  suts: 2,
  operationsPerWorker: 1_000_000,
  faults: ALL_FAULTS,
  intervalMs: 2_000,
  leaseMs: 1_500,
  storeTimeoutMs: 1_000,
  // Clients as behind a load balancer: a 2 s attempt timeout (30× the healthy p99) and a failed
  // server passed over for 3 s, shorter than a pause or a cut, so it is tried again mid-fault.
  attemptTimeoutMs: 2_000,
  ejectMs: 3_000,
  idempotency: true,
  fencing: true,
  seed: 1,
} as const;

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const kind = options.sut ?? 'app';
  if (kind === 'gateway' && options.store === 'pg-txn')
    throw new Error(
      'sut gateway with store pg-txn: the gateway has no transactional mode (its effects happen upstream); use postgres',
    );
  const dir = mkdtempSync(join(tmpdir(), `idemkit-chaos-${options.store}-`));
  const registry = new ChildRegistry();
  const say = options.onProgress ?? (() => {});
  const store = await openStoreEnv(options.store, dir);
  const suts: SutProcess[] = [];
  try {
    const downstream = await registry.spawn('downstream.ts', {
      CHAOS_DOWNSTREAM: JSON.stringify({ dir, latencyMs: 5 }),
    });
    const downstreamUrl = `http://127.0.0.1:${downstream.ready}`;
    let upstreamUrl: string | undefined;
    if (kind === 'gateway') {
      const upstream: UpstreamSettings = { dir, downstreamUrl, idempotency: options.idempotency };
      const child = await registry.spawn('sut-upstream.ts', { CHAOS_UPSTREAM: JSON.stringify(upstream) });
      upstreamUrl = `http://127.0.0.1:${child.ready}`;
    }
    for (let i = 0; i < options.suts; i++) {
      const name = `sut-${String.fromCharCode(97 + i)}`;
      const settings: SutSettings = {
        name,
        dir,
        store: await store.specFor(name),
        downstreamUrl,
        ...(upstreamUrl ? { upstreamUrl } : {}),
        port: await freePort(),
        leaseMs: options.leaseMs,
        storeTimeoutMs: options.storeTimeoutMs,
        idempotency: options.idempotency,
        fencing: options.fencing,
      };
      suts.push(
        new SutProcess(registry, settings, [], 100, kind === 'gateway' ? 'sut-gateway.ts' : 'sut.ts'),
      );
    }
    await Promise.all(suts.map((s) => s.start()));
    const targets = suts.map((s) => s.url);

    const phase = async (name: string, durationMs: number, withFaults: boolean) => {
      // The phase starts once every worker is up (spawning 8 under load takes seconds): each
      // worker counts its `durationMs` from its own start, the nemesis from `started`.
      const workers = await Promise.all(
        Array.from({ length: options.workers }, (_, index) => {
          const settings: WorkerSettings = {
            dir,
            index,
            prefix: name,
            targets,
            operations: options.operationsPerWorker,
            durationMs,
            timeoutMs: options.attemptTimeoutMs,
            deadlineMs: 25_000,
            ejectMs: options.ejectMs,
            mutateShare: 0.1,
            sharedKeyShare: 0.1,
          };
          return registry.spawn('client-worker.ts', { CHAOS_WORKER: JSON.stringify(settings) });
        }),
      );
      const started = monoMs();
      const stopAt = started + durationMs;
      say(`${options.store}: ${name} phase, ${Math.round(durationMs / 1000)} s`);
      const faults = withFaults
        ? runNemesis(
            {
              dir,
              suts,
              store,
              kinds: options.faults,
              intervalMs: options.intervalMs,
              pauseMs: 3 * options.leaseMs,
              cutMs: 5_000,
              latencyMs: 500,
              seed: options.seed,
            },
            stopAt,
          )
        : undefined;
      // Workers stop starting operations by stopAt; a started one may take its whole deadline.
      const bound = sleep(durationMs + 40_000).then(() => 'timeout' as const);
      const ended = await Promise.race([Promise.all(workers.map((w) => w.exited)), bound]);
      if (ended === 'timeout') for (const w of workers) w.signal('SIGKILL');
      const counts = await faults;
      return { started, ended: monoMs(), counts };
    };

    const baseline = options.baselineMs > 0 ? await phase('b', options.baselineMs, false) : undefined;
    const faulted = await phase('f', options.faultMs, true);

    // Heal: nothing is paused, cut or slowed any more, and every SUT is up.
    for (const s of suts) s.current?.signal('SIGCONT');
    for (const s of suts) s.current?.signal('SIGUSR2');
    await Promise.all(suts.map((s) => s.settled()));
    for (const s of suts) store.proxy(s.settings.name)?.heal();
    await sleep(Math.max(500, options.leaseMs));

    const finalStarted = monoMs();
    await finalPhase(dir, targets, finalStarted + 60_000);
    const finalPhaseMs = monoMs() - finalStarted;
    await verifyPhase(dir, targets);
    say(`${options.store}: checking`);

    const run = readRun(dir);
    const verdicts = check(run, store.effectRows ? { effectRows: await store.effectRows() } : {});
    const windows = run.faults;
    const inFault = (t: number) => windows.some((f) => t >= f.start && t <= f.end);
    const faultedAttempts = run.attempts.filter(
      (a) => a.phase === 'load' && a.invoke >= faulted.started && a.invoke <= faulted.ended,
    );
    return {
      options,
      verdicts,
      baseline: baseline ? load(run.attempts, baseline.started, baseline.ended) : undefined,
      faulted: load(run.attempts, faulted.started, faulted.ended),
      healthy: { p99: percentile(faultedAttempts.filter((a) => !inFault(a.invoke)).map(latency), 99) },
      faultyWindows: { p99: percentile(faultedAttempts.filter((a) => inFault(a.invoke)).map(latency), 99) },
      faults: faulted.counts ?? { kill: 0, pause: 0, 'store-restart': 0, cut: 0, latency: 0, skew: 0 },
      sutStarts: suts.reduce((n, s) => n + s.starts, 0),
      finalPhaseMs,
      dir,
    };
  } finally {
    for (const s of suts) await s.stop().catch(() => {});
    await registry.killAll();
    await store.close().catch(() => {});
    if (!options.keep) rmSync(dir, { recursive: true, force: true });
  }
}

const latency = (a: { invoke: number; done: number }) => a.done - a.invoke;

/** Retries each scope without a final answer (2xx, or held uncertain) until it has one. */
async function finalPhase(dir: string, targets: string[], until: number): Promise<void> {
  const client = new RecordingClient({
    client: 'final',
    file: files.history(dir, 'final'),
    targets,
    phase: 'final',
    timeoutMs: 5_000,
    deadlineMs: 20_000,
    retries: 10,
  });
  for (let round = 0; round < 10 && monoMs() < until; round++) {
    const pending = [
      ...groupBy(
        readRun(dir).attempts.filter((a) => !a.mutated),
        (a) => a.scope,
      ).values(),
    ].filter((attempts) => !attempts.some((a) => a.outcome === 'ok' || a.problem === 'outcome-uncertain'));
    if (pending.length === 0) return;
    for (const attempts of pending) {
      if (monoMs() >= until) return;
      const first = attempts[0] as (typeof attempts)[number];
      await client.run({
        key: first.key,
        principal: first.principal,
        body: first.body,
        ...(first.query ? { query: first.query } : {}),
      });
    }
  }
}

/** Every acknowledged scope is asked once more: it must replay the same answer (I3, I7). */
async function verifyPhase(dir: string, targets: string[]): Promise<void> {
  const client = new RecordingClient({
    client: 'verify',
    file: files.history(dir, 'verify'),
    targets,
    phase: 'verify',
    timeoutMs: 5_000,
    deadlineMs: 15_000,
    retries: 3,
  });
  const scopes = groupBy(
    readRun(dir).attempts.filter((a) => !a.mutated && a.outcome === 'ok'),
    (a) => a.scope,
  );
  const queue = [...scopes.values()];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const first = next[0] as (typeof next)[number];
        await client.run({
          key: first.key,
          principal: first.principal,
          body: first.body,
          ...(first.query ? { query: first.query } : {}),
        });
      }
    }),
  );
}

function load(
  attempts: {
    phase: string;
    invoke: number;
    done: number;
    scope: string;
    outcome: string;
    mutated: boolean;
  }[],
  from: number,
  to: number,
): PhaseLoad {
  const inPhase = attempts.filter((a) => a.phase === 'load' && a.invoke >= from && a.invoke <= to);
  const scopes = groupBy(
    inPhase.filter((a) => !a.mutated),
    (a) => a.scope,
  );
  const acknowledged = [...scopes.values()].filter((list) => list.some((a) => a.outcome === 'ok')).length;
  const durationMs = to - from;
  const latencies = inPhase.map(latency);
  return {
    durationMs,
    operations: scopes.size,
    acknowledged,
    attempts: inPhase.length,
    throughput: acknowledged / (durationMs / 1000),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies.reduce((a, b) => Math.max(a, b), 0),
  };
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}
