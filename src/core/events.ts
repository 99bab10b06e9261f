/**
 * Telemetry the engine emits through `onEvent`. `key` is always the store key (a hash of the
 * scope), never the client's raw key, so events can go to logs as they are.
 */
export type IdempotencyEvent =
  | { type: 'execute'; key: string; generation: number }
  | { type: 'replay'; key: string; status: number }
  | { type: 'conflict'; key: string; reason: 'in-progress' | 'outcome-uncertain' | 'result-unavailable' }
  | { type: 'mismatch'; key: string }
  | { type: 'release'; key: string; status: number }
  | { type: 'uncertain'; key: string; status: number }
  | { type: 'takeover'; key: string; generation: number }
  | { type: 'lease-lost'; key: string; generation: number }
  | { type: 'non-durable'; key: string }
  | { type: 'flushed'; key: string; ok: boolean }
  | { type: 'store-error'; key?: string; operation: string; error: unknown }
  | { type: 'fail-open'; key: string }
  /** A keyed request proceeds in the shared anonymous scope (only with `requirePrincipal: false`). */
  | { type: 'anonymous'; key: string }
  | { type: 'reject'; code: string; status: number };
