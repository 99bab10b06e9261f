import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { IdempotencyStore } from '../../src/stores/types.js';

/*
 * The multi-process claim race (docs/guarantees.md T9/T10 at store level): N processes claim the same
 * list of keys, each in its own shuffled order with 50 calls in flight. Exactly-once means every
 * key is acquired by exactly one process, and no call fails.
 */

export interface RaceResult {
  acquired: number[];
  errors: string[];
  ms: number;
}

/** Runs in a worker: claims `${run}-0 … ${run}-(count-1)` and reports what it acquired. */
export async function raceKeys(
  store: IdempotencyStore,
  run: string,
  count: number,
  seed: number,
): Promise<RaceResult> {
  const order = Array.from({ length: count }, (_, i) => i);
  let state = seed + 1;
  for (let i = order.length - 1; i > 0; i--) {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    const j = state % (i + 1);
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  const acquired: number[] = [];
  const errors: string[] = [];
  const started = performance.now();
  let next = 0;
  async function lane(): Promise<void> {
    while (next < order.length) {
      const index = order[next++] as number;
      const token = randomBytes(16).toString('hex');
      const request = {
        key: `${run}-${index}`,
        fingerprint: 'fp',
        token,
        leaseMs: 600_000,
        retentionMs: 600_000,
      };
      try {
        if ((await store.claim(request)).outcome === 'acquired') acquired.push(index);
      } catch (error) {
        errors.push((error as Error).message);
      }
    }
  }
  await Promise.all(Array.from({ length: 50 }, lane));
  const shown = errors.slice(0, 5).concat(errors.length > 5 ? [`… ${errors.length} in all`] : []);
  return { acquired, errors: shown, ms: Math.round(performance.now() - started) };
}

/**
 * Starts one `node --import tsx <worker> …args` per entry and collects their JSON lines; a worker
 * still running after `timeoutMs` is killed.
 */
export async function runWorkers(
  worker: string,
  argsPerWorker: string[][],
  timeoutMs = 120_000,
): Promise<RaceResult[]> {
  const file = fileURLToPath(new URL(worker, import.meta.url));
  return Promise.all(
    argsPerWorker.map(
      (args) =>
        new Promise<RaceResult>((resolve, reject) => {
          const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let out = '';
          let err = '';
          child.stdout.on('data', (d: Buffer) => {
            out += d;
          });
          child.stderr.on('data', (d: Buffer) => {
            err += d;
          });
          const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
          child.on('close', (code) => {
            clearTimeout(timer);
            if (code !== 0)
              reject(new Error(`worker ${args.join(' ')} exited with ${code}: ${err.slice(-2_000)}`));
            else resolve(JSON.parse(out.trim().split('\n').pop() ?? '{}') as RaceResult);
          });
        }),
    ),
  );
}

/** Every key acquired exactly once across all workers, and no errors. */
export function summarize(results: RaceResult[], count: number) {
  const seen = new Map<number, number>();
  for (const r of results) for (const i of r.acquired) seen.set(i, (seen.get(i) ?? 0) + 1);
  return {
    acquired: results.reduce((n, r) => n + r.acquired.length, 0),
    distinct: seen.size,
    twice: [...seen.values()].filter((n) => n > 1).length,
    missing: count - seen.size,
    errors: results.flatMap((r) => r.errors),
    perWorker: results.map((r) => `${r.acquired.length} in ${r.ms} ms`).join(', '),
  };
}
