import type { ClientResponse } from './response.js';

/**
 * Why the client ended an operation without the answer it wanted. Callers switch on `code`:
 * - `outcome-unknown`: the request may have run and the client cannot find out (an unsafe
 *   operation lost its connection, or the server answered 409 `outcome-uncertain`): reconcile;
 * - `key-reused`: the key was used before with other parameters (422): start a new key;
 * - `retries-exhausted`, `deadline-exceeded`, `budget-exhausted`: no attempt got an answer and
 *   the client stopped; a keyed operation can be sent again later with the same key;
 * - `invalid-options`: the client or the call is misconfigured.
 */
export const ClientErrorCode = {
  OutcomeUnknown: 'outcome-unknown',
  KeyReused: 'key-reused',
  RetriesExhausted: 'retries-exhausted',
  DeadlineExceeded: 'deadline-exceeded',
  BudgetExhausted: 'budget-exhausted',
  InvalidOptions: 'invalid-options',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

const BRAND = Symbol.for('idemkit.client-error');

export interface ClientErrorDetails {
  /** The operation's key (the generated one when the caller gave none). */
  key?: string | undefined;
  /** Attempts made, the first one included. */
  attempts?: number | undefined;
  /** The server's last answer, where there was one. */
  response?: ClientResponse | undefined;
  cause?: unknown;
}

/** Base class of every error `idemkit/client` throws. */
export class ClientError extends Error {
  override readonly name: string = 'ClientError';
  readonly code: ClientErrorCode;
  readonly key: string | undefined;
  readonly attempts: number;
  readonly response: ClientResponse | undefined;
  readonly [BRAND] = true;

  constructor(code: ClientErrorCode, message: string, details: ClientErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.key = details.key;
    this.attempts = details.attempts ?? 0;
    this.response = details.response;
  }
}

/**
 * The request may have been executed, and retrying could execute it again: the operation is
 * unsafe (no key support) and its connection failed after the request was sent, or the server
 * holds the key as uncertain (409 `outcome-uncertain`). Look the result up before acting again.
 */
export class OutcomeUnknownError extends ClientError {
  override readonly name = 'OutcomeUnknownError';

  constructor(message: string, details: ClientErrorDetails = {}) {
    super('outcome-unknown', message, details);
  }
}

/** 422 `key-reused`: this key already belongs to a request with other parameters. */
export class KeyReusedError extends ClientError {
  override readonly name = 'KeyReusedError';

  constructor(message: string, details: ClientErrorDetails = {}) {
    super('key-reused', message, details);
  }
}

/** Bad client options or call options, thrown before anything is sent. */
export class ClientConfigError extends ClientError {
  override readonly name = 'ClientConfigError';

  constructor(message: string, cause?: unknown) {
    super('invalid-options', message, { cause });
  }
}

/** True for the client's errors, also across duplicate package copies and realms. */
export function isClientError(value: unknown): value is ClientError {
  if (value instanceof ClientError) return true;
  return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
}
