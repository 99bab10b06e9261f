import { canonicalJson } from './canonical-json.js';
import { type Claimant, claimWithinCap, NO_SECRETS } from './claim.js';
import type { Decision, HandlerContext } from './decision.js';
import {
  CapacityError,
  IdempotencyConfigError,
  IdempotencyError,
  InFlightError,
  KeyReusedError,
  OutcomeUncertainError,
  PROBLEMS,
  type ProblemCode,
  StoreMisconfiguredError,
  StoreUnavailableError,
} from './errors.js';
import { Fingerprint } from './fingerprint.js';
import { waitMsOf } from './options.js';
import type { EngineRequest } from './request.js';
import type { EngineResponse } from './response.js';
import type { EngineRuntime } from './runtime.js';
import { downstreamKeyFor, operationScopeHash, slotOf } from './scope.js';

/** An operation call: what `idem.run()` de-duplicates, outside HTTP (consumers, agent tools). */
export interface OperationCall {
  /** What is done, e.g. `charge` or a webhook source: keys of two operations never meet. */
  operation: string;
  /** The caller's idempotency key (an event id, a tool call's key). */
  key: string;
  /**
   * The call's arguments (JSON-serialisable). A retry must send equal params (compared as
   * canonical JSON, by an HMAC); the same key with other params is refused (`KeyReusedError`).
   */
  params?: unknown;
  /** Who calls; records of two principals never meet. @default '' */
  principal?: string;
  /** @default '' */
  tenant?: string;
  /** Overrides the engine's `leaseMs` for this call. */
  leaseMs?: number;
  /** Overrides the engine's `retentionMs`: how long the result is replayed. */
  retentionMs?: number;
  /**
   * Hold a concurrent duplicate up to this long for the first call's result, instead of
   * throwing `InFlightError` at once. `true` means 5 000. @default the engine's `wait`
   */
  wait?: boolean | number;
}

/** `fn` of `idem.run()`: the same `ctx` as an HTTP handler (signal, fencing, downstreamKey…). */
export type OperationFn<T> = (ctx: HandlerContext) => T | Promise<T>;

/**
 * The method the operation's stand-in request carries: per-request options (`leaseMs`,
 * `retentionMs`, `wait`, `classify`, `replayHeaders` as functions) see
 * `{ method: 'OPERATION', path: operation }` and can tell it from HTTP traffic.
 */
export const OPERATION_METHOD = 'OPERATION';

const NO_HEADERS = Object.freeze({});
const JSON_HEADERS: [string, string][] = [['content-type', 'application/json']];
const DEFAULT_RETRY_AFTER_MS = 1_000;

/**
 * `idem.run()`: the operation call on the same claim → execute → complete code as HTTP
 * (claim.ts, in-flight.ts, execution.ts). Only admission differs: the scope comes from
 * (tenant, principal, operation, key), the fingerprint from canonical JSON of `params`, and the
 * result is kept as a 200 JSON response (a 204 for `undefined`). What the HTTP path answers
 * with a problem is thrown here as a typed `IdempotencyError`.
 */
export async function runOperation<T>(
  rt: EngineRuntime,
  call: OperationCall,
  fn: OperationFn<T>,
): Promise<T> {
  const decision = await decide(rt, call);
  switch (decision.kind) {
    case 'replay':
      return fromStored<T>(decision.response);
    case 'reject':
      throw errorFor(decision.code, call);
    case 'bypass':
      // Only `failOpen` with a failing store gets here: run without idempotency, as HTTP does.
      return fn(detachedContext(call));
    case 'execute': {
      let result: T;
      try {
        result = await fn(decision.ctx);
      } catch (error) {
        // Released, or held uncertain after effectsStarted(): the caller sees its own error.
        await decision.abort(error);
        throw error;
      }
      let response: EngineResponse;
      try {
        response = toStored(result);
      } catch (error) {
        // fn ran; its effects may stand but its result cannot be kept: never run it again.
        decision.ctx.effectsStarted();
        await decision.abort(error);
        throw new TypeError('idemkit: the result of run() must be JSON-serialisable', { cause: error });
      }
      const outcome = await decision.commit(response);
      // Kept, or (a custom classify()) released or held: fn succeeded either way. Any other
      // status is idemkit's problem answer: the lease was lost, or the transaction failed.
      if (outcome.response.status === response.status && outcome.disposition !== 'lease-lost') return result;
      throw errorFor(
        outcome.disposition === 'unknown' ? 'outcome-unknown' : problemCode(outcome.response),
        call,
      );
    }
    default:
      return decision satisfies never;
  }
}

function decide(rt: EngineRuntime, call: OperationCall): Promise<Decision> | Decision {
  const { operation, key } = call;
  if (typeof operation !== 'string' || operation === '') {
    throw new IdempotencyConfigError('run(): operation must be a non-empty string');
  }
  if (typeof key !== 'string' || key === '') {
    throw new IdempotencyConfigError('run(): key must be a non-empty string');
  }
  const options = rt.options;
  const tenant = call.tenant ?? '';
  const principal = call.principal ?? '';
  const paramsText = canonicalParams(call.params);
  const request: EngineRequest = {
    method: OPERATION_METHOD,
    path: operation,
    headers: NO_HEADERS,
    body: Buffer.from(paramsText),
    native: call,
  };
  const scopeKey = operationScopeHash({ tenant, principal, operation, key });
  const claimant: Claimant = {
    request,
    key: scopeKey,
    slot: slotOf(tenant, principal),
    fingerprint: new Fingerprint({
      head: JSON.stringify([OPERATION_METHOD, operation]),
      kind: 'j',
      body: paramsText,
    }),
    secrets: NO_SECRETS,
    print: '',
    leaseMs: positive('leaseMs', call.leaseMs) ?? options.leaseMs(request),
    retentionMs: positive('retentionMs', call.retentionMs) ?? options.retentionMs(request),
  };
  return claimWithinCap(rt, claimant, waitMsOf(call.wait ?? options.waitMs(request)), 'operations');
}

/** Canonical JSON of params: key order and spacing never make two equal calls differ. */
function canonicalParams(params: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(params ?? null);
  } catch (error) {
    throw new IdempotencyConfigError(`run(): params must be JSON-serialisable (${(error as Error).message})`);
  }
  const canonical = text === undefined ? undefined : canonicalJson(text);
  if (canonical === undefined) throw new IdempotencyConfigError('run(): params must be JSON-serialisable');
  return canonical;
}

function positive(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 1) {
    throw new IdempotencyConfigError(`run(): ${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

function toStored(result: unknown): EngineResponse {
  if (result === undefined) return { status: 204, headers: [], body: new Uint8Array(0) };
  const text = JSON.stringify(result);
  if (text === undefined) throw new TypeError(`a ${typeof result} is not JSON`);
  return { status: 200, headers: JSON_HEADERS, body: Buffer.from(text) };
}

function fromStored<T>(response: EngineResponse): T {
  if (response.status === 204) return undefined as T;
  if (response.status !== 200) {
    // A custom classify() kept a failure: what the first call saw was an error, so is this.
    throw new IdempotencyError(
      'handler-error',
      'the first call with this key failed, and its failure was kept',
    );
  }
  return JSON.parse(Buffer.from(response.body).toString('utf8')) as T;
}

function problemCode(response: EngineResponse): ProblemCode {
  try {
    const { type } = JSON.parse(Buffer.from(response.body).toString('utf8')) as { type?: unknown };
    const code = typeof type === 'string' ? type.slice(type.lastIndexOf(':') + 1) : '';
    if (code in PROBLEMS) return code as ProblemCode;
  } catch {}
  return 'store-unavailable';
}

function errorFor(code: ProblemCode, call: OperationCall): IdempotencyError {
  const what = `operation ${JSON.stringify(call.operation)}`;
  switch (code) {
    case 'key-reused':
      return new KeyReusedError(`${what}: this key was used with other params; use a new key`);
    case 'in-progress':
      return new InFlightError(
        `${what}: the first call with this key is still running; retry later with the same key`,
        DEFAULT_RETRY_AFTER_MS,
      );
    case 'lease-lost':
      return new InFlightError(
        `${what}: another attempt took this key over; retry later with the same key`,
        DEFAULT_RETRY_AFTER_MS,
        'lease-lost',
      );
    case 'outcome-uncertain':
      return new OutcomeUncertainError(
        `${what}: the first call failed after its effects may have begun; check, then use a new key`,
      );
    case 'capacity':
      return new CapacityError(`${what}: too many operations of this caller are running`);
    case 'store-unavailable':
      return new StoreUnavailableError(`${what}: the idempotency store did not answer; nothing was run`);
    case 'store-misconfigured':
      return new StoreMisconfiguredError(`${what}: the idempotency store failed its configuration check`);
    default:
      return new IdempotencyError(code, `${what}: ${PROBLEMS[code].title}`);
  }
}

/** The ctx of a failOpen run: nothing holds the key, so nothing can be lost or fenced. */
function detachedContext(call: OperationCall): HandlerContext {
  const scopeKey = operationScopeHash({
    tenant: call.tenant ?? '',
    principal: call.principal ?? '',
    operation: call.operation,
    key: call.key,
  });
  return {
    signal: new AbortController().signal,
    fencingToken: 0,
    downstreamKey: () => downstreamKeyFor(scopeKey),
    effectsStarted() {},
  };
}
