/**
 * The problem codes of the HTTP contract, each with its status and
 * title. Callers switch on `code`; adapters and the gateway render every one the same way.
 */
export const ProblemCode = {
  MissingKey: 'missing-key',
  InvalidKey: 'invalid-key',
  PrincipalRequired: 'principal-required',
  InProgress: 'in-progress',
  LeaseLost: 'lease-lost',
  OutcomeUncertain: 'outcome-uncertain',
  ResultUnavailable: 'result-unavailable',
  PayloadTooLarge: 'payload-too-large',
  KeyReused: 'key-reused',
  Capacity: 'capacity',
  HandlerError: 'handler-error',
  UpstreamUnavailable: 'upstream-unavailable',
  UpstreamTimeout: 'upstream-timeout',
  StoreUnavailable: 'store-unavailable',
  StoreMisconfigured: 'store-misconfigured',
  OutcomeUnknown: 'outcome-unknown',
  InvalidOptions: 'invalid-options',
  InvalidPath: 'invalid-path',
  MalformedRequest: 'malformed-request',
  RequestTimeout: 'request-timeout',
  HeadersTooLarge: 'headers-too-large',
} as const;
export type ProblemCode = (typeof ProblemCode)[keyof typeof ProblemCode];

interface ProblemInfo {
  status: number;
  title: string;
  /** Seconds for `Retry-After`, where retrying with the same key is the right move. */
  retryAfterSeconds?: number;
}

export const PROBLEMS: Readonly<Record<ProblemCode, ProblemInfo>> = Object.freeze({
  'missing-key': { status: 400, title: 'Idempotency-Key is missing' },
  'invalid-key': { status: 400, title: 'Idempotency-Key is malformed' },
  'principal-required': { status: 401, title: 'Credentials are required for idempotent requests' },
  'in-progress': {
    status: 409,
    title: 'A request is outstanding for this Idempotency-Key',
    retryAfterSeconds: 1,
  },
  'lease-lost': {
    status: 409,
    title: 'This attempt lost its claim on the Idempotency-Key',
    retryAfterSeconds: 1,
  },
  'outcome-uncertain': {
    status: 409,
    title: 'The outcome of the first request with this Idempotency-Key is uncertain',
  },
  'result-unavailable': {
    status: 409,
    title: 'The result of this request was too large to keep for replay',
  },
  'payload-too-large': { status: 413, title: 'Request body is too large' },
  'key-reused': { status: 422, title: 'Idempotency-Key is already used for another request' },
  capacity: {
    status: 429,
    title: 'Too many keyed requests in flight for this principal',
    retryAfterSeconds: 1,
  },
  'handler-error': { status: 500, title: 'The request failed', retryAfterSeconds: 1 },
  'upstream-unavailable': { status: 502, title: 'The upstream service failed', retryAfterSeconds: 1 },
  'upstream-timeout': { status: 504, title: 'The upstream service timed out', retryAfterSeconds: 1 },
  'store-unavailable': {
    status: 503,
    title: 'The idempotency store is unavailable',
    retryAfterSeconds: 1,
  },
  'store-misconfigured': {
    status: 503,
    title: 'The idempotency store is misconfigured',
    retryAfterSeconds: 30,
  },
  'outcome-unknown': {
    status: 503,
    title: 'The outcome of this request is unknown',
    retryAfterSeconds: 1,
  },
  'invalid-options': { status: 500, title: 'idemkit is misconfigured' },
  // The gateway's own refusals of what it cannot forward unambiguously.
  'invalid-path': { status: 400, title: 'The request path is ambiguous or malformed' },
  'malformed-request': { status: 400, title: 'The request is not valid HTTP/1.1' },
  'request-timeout': { status: 408, title: 'The request was not received in time' },
  'headers-too-large': { status: 431, title: 'The request headers are too large' },
});

const BRAND = Symbol.for('idemkit.error');
const DOCS = 'https://github.com/idemkit/idemkit#problem-types';

/** Base class of every error idemkit throws or renders. */
export class IdempotencyError extends Error {
  override readonly name: string = 'IdempotencyError';
  readonly code: ProblemCode;
  readonly status: number;
  readonly [BRAND] = true;

  constructor(code: ProblemCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.status = PROBLEMS[code].status;
  }
}

/** Bad configuration, thrown when a factory resolves its options. */
export class IdempotencyConfigError extends IdempotencyError {
  override readonly name = 'IdempotencyConfigError';

  constructor(message: string) {
    super('invalid-options', `${message} (see ${DOCS.replace('problem-types', 'options')})`);
  }
}

/** A store could not answer (down, timed out, busy, full). The engine fails closed with 503. */
export class StoreUnavailableError extends IdempotencyError {
  override readonly name = 'StoreUnavailableError';

  constructor(message: string, options?: ErrorOptions) {
    super('store-unavailable', message, options);
  }
}

/**
 * A store refused a new record because this caller's partition (tenant + principal) already
 * holds its share. The engine answers 429 `capacity` to that caller only; everyone else keeps
 * working. Only the memory store caps partitions (`maxEntriesPerPrincipal`).
 */
export class CapacityError extends IdempotencyError {
  override readonly name = 'CapacityError';

  constructor(message: string, options?: ErrorOptions) {
    super('capacity', message, options);
  }
}

/** A store's startup check found an unsafe configuration (eviction policy, missing schema). */
export class StoreMisconfiguredError extends IdempotencyError {
  override readonly name = 'StoreMisconfiguredError';

  constructor(message: string, options?: ErrorOptions) {
    super('store-misconfigured', message, options);
  }
}

/*
 * What `idem.run()` throws instead of running `fn` (the HTTP path answers the same cases with
 * a problem response). Each carries the problem code, so one `switch (error.code)` covers both.
 */

/** The key was used for this operation with other params: use a new key. */
export class KeyReusedError extends IdempotencyError {
  override readonly name = 'KeyReusedError';

  constructor(message: string, options?: ErrorOptions) {
    super('key-reused', message, options);
  }
}

/**
 * Another attempt holds the key and is still running (or, for `lease-lost`, took it over from
 * this one): try again after `retryAfterMs` with the same key; it then replays or runs once.
 */
export class InFlightError extends IdempotencyError {
  override readonly name = 'InFlightError';
  readonly retryAfterMs: number;

  constructor(message: string, retryAfterMs: number, code: 'in-progress' | 'lease-lost' = 'in-progress') {
    super(code, message);
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * The first attempt failed after its effects may have begun (`effectsStarted()`), so whether
 * it took effect is unknown: it is never run again under this key. Check, then use a new key.
 */
export class OutcomeUncertainError extends IdempotencyError {
  override readonly name = 'OutcomeUncertainError';

  constructor(message: string, options?: ErrorOptions) {
    super('outcome-uncertain', message, options);
  }
}

/** True for idemkit errors, also across duplicate package copies and realms. */
export function isIdempotencyError(value: unknown): value is IdempotencyError {
  if (value instanceof IdempotencyError) return true;
  return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
}
