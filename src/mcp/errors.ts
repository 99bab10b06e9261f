import {
  CapacityError,
  InFlightError,
  isIdempotencyError,
  KeyReusedError,
  OutcomeUncertainError,
} from '../core/errors.js';

/**
 * Stable codes of the tool errors idemkit answers instead of running a keyed tool. An agent
 * reads them from the result's `_meta` (`io.idemkit/error`) or from the JSON in its text.
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
  /** This caller runs too many keyed calls at once: retry after `retryAfterSeconds`. */
  | 'idempotency_capacity'
  /** The idempotency store did not answer; nothing ran: retry after `retryAfterSeconds`, same key. */
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
  _meta: Record<string, unknown>;
}

export function toolError(
  error: ToolErrorCode,
  message: string,
  retryAfterSeconds?: number,
): ToolErrorResult {
  const body: ToolError =
    retryAfterSeconds === undefined ? { error, message } : { error, message, retryAfterSeconds };
  return {
    isError: true,
    content: [{ type: 'text', text: JSON.stringify(body) }],
    _meta: { [META.error]: body },
  };
}

/** What an engine refusal means to an agent; `undefined` for errors that are the tool's own. */
export function toolErrorOf(error: unknown): ToolErrorResult | undefined {
  if (!isIdempotencyError(error)) return undefined;
  if (error instanceof KeyReusedError) {
    return toolError(
      'idempotency_key_reused',
      'this key was used with other arguments; use a new key for a new action',
    );
  }
  if (error instanceof InFlightError) {
    return toolError(
      'idempotency_in_flight',
      'the first call with this key is still running; retry later with the same key',
      Math.max(1, Math.ceil(error.retryAfterMs / 1_000)),
    );
  }
  if (error instanceof OutcomeUncertainError) {
    return toolError(
      'idempotency_outcome_uncertain',
      'the first call with this key failed after its effects may have begun; check the outcome before acting again, then use a new key',
    );
  }
  if (error instanceof CapacityError) {
    return toolError(
      'idempotency_capacity',
      'too many keyed calls of this caller are running; retry later',
      1,
    );
  }
  if (error.code === 'store-unavailable' || error.code === 'store-misconfigured') {
    return toolError(
      'idempotency_store_unavailable',
      'the idempotency store did not answer and nothing was run; retry later with the same key',
      1,
    );
  }
  return undefined;
}
