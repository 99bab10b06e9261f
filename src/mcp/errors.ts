import { isIdempotencyError } from '../core/errors.js';

/**
 * Stable codes of the tool errors idemkit answers instead of running (or replaying) a keyed
 * tool. An agent reads them from the result's `_meta["io.idemkit/error"]`, its
 * `structuredContent` (tools without an output schema) or the JSON in its first text content.
 */
export type ToolErrorCode =
  /** No key in the arguments or `_meta`: call again with one (a new UUID per intended action). */
  | 'idempotency_key_required'
  /** The key is not 1–255 printable ASCII characters without spaces. */
  | 'idempotency_key_invalid'
  /** No caller identity (no MCP auth info, `principal()` gave none) and anonymous keys are off. */
  | 'idempotency_principal_required'
  /** The first call with this key still runs: retry after `retryAfterSeconds` with the same key. */
  | 'idempotency_in_flight'
  /** The key was used with other arguments: a new action needs a new key. */
  | 'idempotency_key_reused'
  /** The first call failed after its effects may have begun: check, then use a new key. */
  | 'idempotency_outcome_uncertain'
  /** The first call completed but its result was too large to keep: do not retry, look it up. */
  | 'idempotency_result_unavailable'
  /** Whether the result was stored is unknown (a lost COMMIT answer): retry with the same key. */
  | 'idempotency_outcome_unknown'
  /** This caller runs too many keyed calls at once: retry after `retryAfterSeconds`. */
  | 'idempotency_capacity'
  /** The idempotency store did not answer; nothing was applied: retry after `retryAfterSeconds`, same key. */
  | 'idempotency_store_unavailable';

export interface ToolError {
  error: ToolErrorCode;
  message: string;
  retryAfterSeconds?: number;
}

/** The `_meta` names idemkit reads and writes on MCP messages. */
export const META = {
  /** In a request's `_meta`: the key, when not given as an argument. */
  key: 'io.idemkit/idempotency-key',
  /** In a result's `_meta`: `true` when this is the stored result of an earlier call. */
  replayed: 'io.idemkit/replayed',
  /** In an error result's `_meta`: the {@link ToolError}. */
  error: 'io.idemkit/error',
  /** In a listed tool's `_meta`: `{ keyArgument }` for a keyed tool. */
  keyed: 'io.idemkit/idempotent',
} as const;

export interface ToolErrorResult {
  [key: string]: unknown;
  isError: true;
  content: { type: 'text'; text: string }[];
  structuredContent?: Record<string, unknown>;
  _meta: Record<string, unknown>;
}

/**
 * A coded tool error. `structured: false` leaves out `structuredContent`: the SDK's client
 * validates it against a tool's output schema even on error results, and an error body never
 * matches a tool's own output shape.
 */
export function toolError(
  error: ToolErrorCode,
  message: string,
  retryAfterSeconds?: number,
  structured = true,
): ToolErrorResult {
  const body: ToolError =
    retryAfterSeconds === undefined ? { error, message } : { error, message, retryAfterSeconds };
  return {
    isError: true,
    content: [{ type: 'text', text: JSON.stringify(body) }],
    ...(structured ? { structuredContent: { ...body } } : {}),
    _meta: { [META.error]: body },
  };
}

/**
 * What an engine refusal means to an agent; `undefined` for errors that are not idemkit's
 * (they pass through to the SDK). Switches on `code`, which holds across package copies.
 */
export function toolErrorOf(error: unknown, structured: boolean): ToolErrorResult | undefined {
  if (!isIdempotencyError(error)) return undefined;
  const coded = (code: ToolErrorCode, message: string, retryAfterSeconds?: number) =>
    toolError(code, message, retryAfterSeconds, structured);
  switch (error.code) {
    case 'key-reused':
      return coded(
        'idempotency_key_reused',
        'this key was used with other arguments; use a new key for a new action',
      );
    case 'in-progress':
    case 'lease-lost': {
      const retryAfterMs = (error as { retryAfterMs?: unknown }).retryAfterMs;
      return coded(
        'idempotency_in_flight',
        'the first call with this key is still running; retry later with the same key',
        Math.max(1, Math.ceil(typeof retryAfterMs === 'number' ? retryAfterMs / 1_000 : 1)),
      );
    }
    case 'outcome-uncertain':
      return coded(
        'idempotency_outcome_uncertain',
        'the first call with this key failed after its effects may have begun; check the outcome before acting again, then use a new key',
      );
    case 'result-unavailable':
      return coded(
        'idempotency_result_unavailable',
        'the first call with this key completed, but its result was too large to keep; do not call again, look up what it did',
      );
    case 'outcome-unknown':
      return coded(
        'idempotency_outcome_unknown',
        'whether the result of this call was kept is unknown; retry with the same key, which replays it or runs the call once',
        1,
      );
    case 'capacity':
      return coded('idempotency_capacity', 'too many keyed calls of this caller are running; retry later', 1);
    case 'store-unavailable':
    case 'store-misconfigured':
      return coded(
        'idempotency_store_unavailable',
        'the idempotency store did not answer and nothing was applied; retry later with the same key',
        error.code === 'store-misconfigured' ? 30 : 1,
      );
    default:
      return undefined;
  }
}
