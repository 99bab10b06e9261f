/**
 * A retrying client process of the chaos run: logical operations one after another, each with
 * one key and one body over all its attempts (idemkit/client, full-jitter backoff, a timeout per
 * attempt, a deadline per operation), every attempt in its history file. Env CHAOS_WORKER:
 * WorkerSettings. Stops after `operations`, or `durationMs` after it started, whichever is first;
 * prints `READY` at start and exits 0 when done.
 */
import { files, monoMs } from './config.js';
import { type Operation, RecordingClient } from './history.js';

export interface WorkerSettings {
  dir: string;
  /** Worker index: its principal is alice (even) or bob (odd); pairs share some keys. */
  index: number;
  /** Distinguishes the keys of a run's phases. */
  prefix: string;
  targets: string[];
  operations: number;
  /** How long it starts operations, counted from its own start. */
  durationMs: number;
  timeoutMs: number;
  deadlineMs: number;
  /** How long a target that failed is passed over (RecorderOptions.ejectMs). */
  ejectMs: number;
  /** Share of operations followed by one request that reuses the key with another body. */
  mutateShare: number;
  /** Share of operations whose key the paired worker (other principal) uses too. */
  sharedKeyShare: number;
}

/**
 * One operation in this many is ambiguous: its first attempt fails after `effectsStarted()`, so
 * the key is held uncertain and no retry may run it again (retries get 409 outcome-uncertain).
 */
const AMBIGUOUS_EVERY = 20;

/** The operation stream of one worker: deterministic, so a pair of workers collide on purpose. */
export function operationOf(settings: WorkerSettings, n: number): Operation {
  const principal = settings.index % 2 === 0 ? 'alice' : 'bob';
  const pair = Math.floor(settings.index / 2);
  const shared = n % Math.round(1 / settings.sharedKeyShare) === 0;
  const key = shared ? `${settings.prefix}x-${pair}-${n}` : `${settings.prefix}k-${settings.index}-${n}`;
  const body = JSON.stringify({ amount: 100 + (n % 900), currency: 'eur', note: key });
  if (!shared && n % AMBIGUOUS_EVERY === AMBIGUOUS_EVERY - 1)
    return { key, principal, body, query: 'fail=post', failAttempts: 1 };
  return { key, principal, body };
}

const settings = JSON.parse(process.env.CHAOS_WORKER ?? '{}') as WorkerSettings;
if (process.env.CHAOS_WORKER) {
  const name = `w${settings.index}`;
  const client = new RecordingClient({
    client: name,
    file: files.history(settings.dir, name),
    targets: settings.targets,
    phase: 'load',
    timeoutMs: settings.timeoutMs,
    deadlineMs: settings.deadlineMs,
    ejectMs: settings.ejectMs,
    retries: 4,
  });
  const stopAt = monoMs() + settings.durationMs;
  process.stdout.write('READY\n');
  const mutateEvery = settings.mutateShare > 0 ? Math.round(1 / settings.mutateShare) : 0;
  for (let n = 0; n < settings.operations && monoMs() < stopAt; n++) {
    const op = operationOf(settings, n);
    const attempts = await client.run(op);
    if (mutateEvery > 0 && n % mutateEvery === 1 && attempts.some((a) => a.outcome === 'ok')) {
      const body = JSON.stringify({ ...JSON.parse(op.body), amount: 99_999 });
      await client.run({ ...op, body, mutated: true }, { retries: 0 });
    }
  }
  process.exit(0);
}
