import type { Decision } from './decision.js';
import type { ProblemCode } from './errors.js';
import type { IdempotencyEvent } from './events.js';
import type { InFlight } from './in-flight.js';
import type { ResolvedOptions } from './options.js';
import { problemResponse } from './problem.js';
import type { WaitRoom } from './replay-and-wait.js';
import type { IdempotencyStore } from './store.js';
import type { StoreCheck } from './store-check.js';
import type { StoreSecrets } from './store-secrets.js';

/**
 * What the parts of one engine share. Built once by `createIdempotency` and handed to each step
 * by reference, so a request makes no closures: begin → claim → replay, wait or execute.
 */
export interface EngineRuntime {
  readonly options: ResolvedOptions;
  readonly store: IdempotencyStore;
  readonly emit: (event: IdempotencyEvent) => void;
  /** The store's startup check, which requests pass before their first claim. */
  readonly storeCheck: StoreCheck;
  /** The fingerprint secrets: configured, or the store's own, read once. */
  readonly secrets: StoreSecrets;
  /** Executions running in this process: per-principal slots and running keys. */
  readonly inFlight: InFlight;
  /** Duplicates waiting for a key to settle (wait mode). */
  readonly waits: WaitRoom;
}

export const BYPASS: Decision = Object.freeze({ kind: 'bypass' });

/** A problem answer instead of running the handler; counted as a `reject` event. */
export function reject(rt: EngineRuntime, code: ProblemCode, detail?: string): Decision {
  const response = problemResponse(code, detail);
  rt.emit({ type: 'reject', code, status: response.status });
  return { kind: 'reject', code, response };
}
