import { ClientConfigError } from './errors.js';

/** Where the server reads an operation's key: a header, a query parameter or a JSON/form body field. */
export interface KeyCarrier {
  in: 'header' | 'query' | 'body';
  /** Spelled as the server expects it: `Idempotency-Key`, `requestId`, `ClientToken`. */
  name: string;
}

/**
 * How far an operation may be retried:
 * - `idempotent`: repeating it changes nothing more (GET, HEAD, PUT, DELETE, OPTIONS): retried
 *   without a key;
 * - `keyed`: the server de-duplicates by a key in `carrier`: retried with the same key and body;
 * - `unsafe`: no key support: never retried once the request may have reached the server.
 */
export type RetryPolicy =
  | { readonly kind: 'idempotent' }
  | { readonly kind: 'keyed'; readonly carrier: KeyCarrier }
  | { readonly kind: 'unsafe' };

/** A policy, or its shorthand: `'keyed'` is the `Idempotency-Key` header. */
export type PolicyInput =
  | 'idempotent'
  | 'keyed'
  | 'unsafe'
  | { kind: 'idempotent' }
  | { kind: 'unsafe' }
  | { kind: 'keyed'; carrier?: KeyCarrier };

export const HEADER_CARRIER: KeyCarrier = Object.freeze({ in: 'header', name: 'Idempotency-Key' });

const IDEMPOTENT: RetryPolicy = Object.freeze({ kind: 'idempotent' });
const UNSAFE: RetryPolicy = Object.freeze({ kind: 'unsafe' });
const KEYED_HEADER: RetryPolicy = Object.freeze({ kind: 'keyed', carrier: HEADER_CARRIER });

/** RFC 9110 §9.2.2: methods whose repetition has no further effect. */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'TRACE']);

/**
 * The policy of a method nobody said anything about: idempotent methods as they are; POST,
 * PATCH and the rest keyed in the header, because a key is what makes their retry safe, or
 * `unsafe` when the client was told that its servers take no keys (`unknownMethods: 'unsafe'`).
 */
export function policyForMethod(method: string, otherMethods: 'keyed' | 'unsafe'): RetryPolicy {
  if (IDEMPOTENT_METHODS.has(method)) return IDEMPOTENT;
  return otherMethods === 'keyed' ? KEYED_HEADER : UNSAFE;
}

export function isReadMethod(method: string): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
}

/** Turns a shorthand into one frozen shape and checks it. */
export function resolvePolicy(input: PolicyInput, where: string): RetryPolicy {
  const kind = typeof input === 'string' ? input : input?.kind;
  if (kind === 'idempotent') return IDEMPOTENT;
  if (kind === 'unsafe') return UNSAFE;
  if (kind !== 'keyed') {
    throw new ClientConfigError(
      `${where}: policy must be 'idempotent', 'keyed' or 'unsafe', got ${String(kind)}`,
    );
  }
  const carrier = typeof input === 'string' ? undefined : (input as { carrier?: KeyCarrier }).carrier;
  if (carrier === undefined) return KEYED_HEADER;
  if (
    !['header', 'query', 'body'].includes(carrier.in) ||
    typeof carrier.name !== 'string' ||
    !carrier.name
  ) {
    throw new ClientConfigError(
      `${where}: a key carrier is { in: 'header' | 'query' | 'body', name }, got ${JSON.stringify(carrier)}`,
    );
  }
  return Object.freeze({ kind: 'keyed', carrier: Object.freeze({ in: carrier.in, name: carrier.name }) });
}

export function describePolicy(policy: RetryPolicy): string {
  return policy.kind === 'keyed' ? `keyed (${policy.carrier.in} ${policy.carrier.name})` : policy.kind;
}
