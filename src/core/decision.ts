import type { ProblemCode } from './errors.js';
import type { Disposition } from './options.js';
import type { EngineResponse } from './response.js';

/**
 * What `begin()` decides for a request, and what an execution hands the adapter: the
 * vocabulary shared by the engine, the fetch flow and every adapter. Types only, so anything
 * may import it without pulling the engine in.
 */
export type Decision =
  /** Not covered (method, or no key on an optional route): run the handler without idemkit. */
  | { kind: 'bypass' }
  /** Answer with `response` (a problem), do not run the handler. */
  | { kind: 'reject'; code: ProblemCode; response: EngineResponse }
  /** Answer with the stored result, do not run the handler. */
  | { kind: 'replay'; key: string; response: EngineResponse }
  | ExecuteDecision;

export interface ExecuteDecision {
  kind: 'execute';
  key: string;
  ctx: HandlerContext;
  /** Call once with the handler's response. Persists it before you answer (item 5). */
  commit(response: EngineResponse): Promise<CommitResult>;
  /** Call once when the handler threw; answers a sanitised 500 (or `lease-lost`). */
  abort(error?: unknown): Promise<CommitResult>;
}

export interface CommitResult {
  /** What to send: the handler's response marked as original, or a problem (409 `lease-lost`). */
  response: EngineResponse;
  disposition: Disposition | 'lease-lost' | 'unknown';
  /** False when the result could not be written yet (F3); a background flush keeps trying. */
  durable: boolean;
}

/** What a handler gets while it runs under a claim. */
export interface HandlerContext {
  /** Fires when the lease is lost (taken over, or unrenewable for a whole lease): stop before effects. */
  readonly signal: AbortSignal;
  /** The record's generation: rises on every takeover, so a foreign system can reject older writers. */
  readonly fencingToken: number;
  /** A key for foreign calls (payments, email), stable across retries and takeovers. */
  downstreamKey(): string;
  /** Marks that effects began: a failure then holds the key as `uncertain` instead of releasing it. */
  effectsStarted(): void;
  /**
   * Transactional mode only: the store's transaction (for PostgreSQL a client with `query`).
   * Writes made through it commit together with the stored result, or not at all.
   */
  readonly transaction?: unknown;
}
