import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../support/redis-server.js';
import { check, type RunFiles, readRun, storeKeyOf, type Verdicts, violations } from './checker.js';
import { type ChaosStoreKind, files } from './config.js';
import { CRASH_POINTS, type CrashArm, type CrashPoint } from './crash.js';
import { type Operation, RecordingClient } from './history.js';
import { ChildRegistry, SutProcess } from './processes.js';
import { openStoreEnv } from './stores.js';

/*
 * Crash-point enumeration (T53): for each named point × store × {first attempt, retry}, one key
 * whose request kills its SUT exactly there — `first`: the first time any attempt passes the
 * point; `retry`: that time and again the next time an attempt (the retry) passes it. The SUT is
 * restarted at once; idemkit/client retries with the same key; when the operation has a final
 * answer a verify request must replay it. Each cell is judged alone by the checker (I1–I9).
 * A cell whose point the key's requests never pass (a retry that replays instead of running
 * again) is reported as not reached, never as survived.
 */

export type CellMode = 'first' | 'retry';

export interface CellResult {
  store: ChaosStoreKind;
  point: CrashPoint;
  mode: CellMode;
  crashes: number;
  expected: number;
  verdicts: Verdicts;
  violations: number;
}

const LEASE_MS = 900;

/** Points a store's pipeline can reach: completions are a COMMIT in transactional mode. */
export function pointsFor(store: ChaosStoreKind): CrashPoint[] {
  return CRASH_POINTS.map((p) => p.point).filter((point) =>
    store === 'pg-txn' ? !point.startsWith('complete:') : !point.startsWith('commit:'),
  );
}

/** The request that makes its key pass `point`: slow enough to heartbeat, failing to release. */
export function operationFor(point: CrashPoint, mode: CellMode, key: string): Operation {
  const body = JSON.stringify({ amount: 4200, currency: 'eur', note: key });
  const failAttempts = mode === 'retry' ? 2 : 1;
  if (point.startsWith('heartbeat:')) return { key, principal: 'alice', body, query: `ms=${LEASE_MS}` };
  if (point.startsWith('release:')) return { key, principal: 'alice', body, query: 'fail=pre', failAttempts };
  if (point.startsWith('markUncertain:'))
    return { key, principal: 'alice', body, query: 'fail=post', failAttempts };
  return { key, principal: 'alice', body };
}

export async function enumerateCrashPoints(
  store: ChaosStoreKind,
  options: {
    modes?: readonly CellMode[];
    points?: readonly CrashPoint[];
    /** The negative control: no idemkit, a fresh downstream key per execution. */
    idempotency?: boolean;
  } = {},
): Promise<CellResult[]> {
  const modes = options.modes ?? ['first', 'retry'];
  const points = options.points ?? pointsFor(store);
  const dir = mkdtempSync(join(tmpdir(), `idemkit-crash-${store}-`));
  const registry = new ChildRegistry();
  const env = await openStoreEnv(store, dir);
  let sut: SutProcess | undefined;
  try {
    const downstream = await registry.spawn('downstream.ts', {
      CHAOS_DOWNSTREAM: JSON.stringify({ dir, latencyMs: 0 }),
    });
    const cells = points.flatMap((point) =>
      modes.map((mode) => ({ point, mode, key: `cp-${point}-${mode}` })),
    );
    const arms: CrashArm[] = cells.map((c) => ({
      point: c.point,
      key: c.key,
      hits: c.mode === 'first' ? [1] : [1, 2],
    }));
    sut = new SutProcess(
      registry,
      {
        name: 'sut-a',
        dir,
        store: await env.specFor('sut-a'),
        downstreamUrl: `http://127.0.0.1:${downstream.ready}`,
        port: await freePort(),
        leaseMs: LEASE_MS,
        storeTimeoutMs: 1_000,
        idempotency: options.idempotency ?? true,
        fencing: true,
      },
      arms,
    );
    await sut.start();
    const client = (phase: 'load' | 'verify') =>
      new RecordingClient({
        client: phase === 'load' ? 'cells' : 'verify',
        file: files.history(dir, phase === 'load' ? 'cells' : 'verify'),
        targets: [sut?.url as string],
        phase,
        timeoutMs: 3_000,
        // A SUT killed twice in a cell restarts twice (a tsx start takes seconds on a loaded
        // 2-core machine): the retries must outlast both restarts, or the cell reports a key
        // left without an answer (I6) that says nothing about idemkit.
        deadlineMs: 60_000,
        retries: 40,
      });
    const load = client('load');
    const verify = client('verify');
    for (const cell of cells) {
      const op = operationFor(cell.point, cell.mode, cell.key);
      const attempts = await load.run(op);
      await sut.settled();
      if (attempts.some((a) => a.outcome === 'ok')) await verify.run({ ...op, failAttempts: 0 });
    }
    await sut.stop();

    const run = readRun(dir);
    const effectRows = env.effectRows ? await env.effectRows() : undefined;
    const crashLog = join(dir, 'crashes.jsonl');
    const crashes = existsSync(crashLog)
      ? readFileSync(crashLog, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { key: string })
      : [];
    return cells.map((cell) => {
      const verdicts = check(only(run, cell.key), effectRows ? { effectRows } : {});
      return {
        store,
        point: cell.point,
        mode: cell.mode,
        crashes: crashes.filter((c) => c.key === cell.key).length,
        expected: cell.mode === 'first' ? 1 : 2,
        verdicts,
        violations: Object.values(violations(verdicts)).reduce((a, b) => a + b, 0),
      };
    });
  } finally {
    await sut?.stop().catch(() => {});
    await registry.killAll();
    await env.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The files of one cell: its key's attempts, executions, effects and store calls. */
function only(run: RunFiles, key: string): RunFiles {
  const scope = `alice|${key}`;
  const storeKey = storeKeyOf(scope);
  return {
    attempts: run.attempts.filter((a) => a.key === key),
    ledger: run.ledger.filter((e) => e.key === key || e.storeKey === storeKey),
    storeOps: run.storeOps.filter((o) => o.key === storeKey),
    downstream: run.downstream.filter((d) => d.scope === scope),
    faults: run.faults,
  };
}

/** One line per cell, then "N crash points × M stores survived". */
export function formatCells(results: CellResult[]): string {
  const lines = results.map(
    (r) =>
      `${r.store.padEnd(8)} ${r.point.padEnd(28)} ${r.mode.padEnd(5)} ${
        r.crashes === 0 ? 'not reached' : `${r.crashes} crash${r.crashes > 1 ? 'es' : ''}`
      }${r.crashes > 0 && r.crashes < r.expected ? ' (the retry replayed)' : ''}  violations ${r.violations}`,
  );
  const stores = new Set(results.map((r) => r.store));
  const reached = results.filter((r) => r.crashes > 0);
  const survived = reached.filter((r) => r.violations === 0);
  const points = new Set(survived.map((r) => r.point));
  lines.push(
    `${points.size} crash points × ${stores.size} stores survived: ${survived.length}/${reached.length} reached cells without a violation (${results.length - reached.length} cells not reached)`,
  );
  return lines.join('\n');
}
