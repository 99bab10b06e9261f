import { type Claimant, claimWithinCap, NO_SECRETS } from './claim.js';
import type { Decision } from './decision.js';
import { createFingerprint } from './fingerprint.js';
import { findKey } from './key-carriers.js';
import { waitMsOf } from './options.js';
import { type EngineRequest, headerValue } from './request.js';
import { BYPASS, type EngineRuntime, reject } from './runtime.js';
import { hashCredential, scopeHash, slotOf } from './scope.js';

const EMPTY = new Uint8Array(0);

/**
 * Admission, the first half of `begin()`: is the request covered, does it carry a valid key,
 * whose is it (principal, tenant → the scope hash), may that caller run one more, and what is
 * its fingerprint. Cheap refusals come first; the store is touched only at the end, by the
 * claim (claim.ts).
 */
export async function beginRequest(rt: EngineRuntime, request: EngineRequest): Promise<Decision> {
  const options = rt.options;
  const method = request.method.toUpperCase();
  if (!options.methods.has(method)) return BYPASS;
  const found = findKey(request, options);
  if (found.status === 'absent') {
    return options.required(request) ? reject(rt, 'missing-key', 'send an Idempotency-Key header') : BYPASS;
  }
  if (found.status === 'invalid') return reject(rt, 'invalid-key', found.reason);
  const body = request.body ?? EMPTY;
  if (body.byteLength > options.maxBodyBytes) {
    return reject(rt, 'payload-too-large', `the body is larger than ${options.maxBodyBytes} bytes`);
  }

  const principal = options.principal
    ? ((await options.principal(request.native, request)) ?? '')
    : hashCredential(headerValue(request.headers, 'authorization'));
  if (principal === '' && options.requirePrincipal) {
    return reject(rt, 'principal-required', 'authenticate before sending a key');
  }
  const tenant = options.tenant ? ((await options.tenant(request.native, request)) ?? '') : '';
  const key = scopeHash({ tenant, principal, method, path: request.path, key: found.key });
  // Counted, so an operator sees how much traffic shares the one anonymous scope.
  if (principal === '') rt.emit({ type: 'anonymous', key });

  const fingerprint = createFingerprint(
    {
      method,
      path: request.path,
      query: request.query ?? '',
      contentType: headerValue(request.headers, 'content-type') ?? '',
      headers: options.fingerprintHeaders.map((h) => [h, headerValue(request.headers, h) ?? '']),
      body,
    },
    options.fingerprint,
  );
  const claimant: Claimant = {
    request,
    key,
    slot: slotOf(tenant, principal),
    fingerprint,
    secrets: NO_SECRETS,
    print: '',
    leaseMs: options.leaseMs(request),
    retentionMs: options.retentionMs(request),
  };
  const refusal = `at most ${options.maxInFlightPerPrincipal} keyed requests may run at once`;
  return claimWithinCap(rt, claimant, waitMsOf(options.waitMs(request)), refusal);
}
