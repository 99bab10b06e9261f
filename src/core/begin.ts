import { type Claimant, claimWithinCap, NO_SECRETS } from './claim.js';
import type { Decision } from './decision.js';
import { createFingerprint } from './fingerprint.js';
import { findKey } from './key-carriers.js';
import { waitMsOf } from './options.js';
import { type EngineRequest, headerValue } from './request.js';
import { BYPASS, type EngineRuntime, reject } from './runtime.js';
import { hashCredential, scopeHash, slotOf } from './scope.js';

const EMPTY = new Uint8Array(0);
const NO_HEADERS: readonly [string, string][] = Object.freeze([]);

/**
 * Admission, the first half of `begin()`: is the request covered, does it carry a valid key,
 * whose is it (principal, tenant → the scope hash), may that caller run one more, and what is
 * its fingerprint. Cheap refusals come first; the store is touched only at the end, by the
 * claim (claim.ts).
 *
 * Not an async function: with the default principal (a hash of `Authorization`) and no tenant
 * function nothing here waits, and the claim's own async frame is the request's only one.
 * A throw still becomes a rejected promise, as from an async function.
 */
export function beginRequest(rt: EngineRuntime, request: EngineRequest): Promise<Decision> {
  try {
    const decision = admit(rt, request);
    return decision instanceof Promise ? decision : Promise.resolve(decision);
  } catch (error) {
    return Promise.reject(error);
  }
}

function admit(rt: EngineRuntime, request: EngineRequest): Decision | Promise<Decision> {
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
  if (options.principal || options.tenant) return admitCaller(rt, request, method, found.key, body);
  return claimAs(rt, request, method, found.key, body, '', defaultPrincipal(request));
}

/** Without a `principal()` option: a SHA-256 of the Authorization header, or '' (anonymous). */
function defaultPrincipal(request: EngineRequest): string {
  return hashCredential(headerValue(request.headers, 'authorization'));
}

/**
 * The operator's own principal and tenant functions, which may be async. A function that answers
 * at once (a header's hash, as the gateway's default) is not awaited: an await costs every
 * request a promise, a suspended frame and a trip through the microtask queue.
 */
function admitCaller(
  rt: EngineRuntime,
  request: EngineRequest,
  method: string,
  clientKey: string,
  body: Uint8Array,
): Decision | Promise<Decision> {
  const options = rt.options;
  const principal = options.principal
    ? options.principal(request.native, request)
    : defaultPrincipal(request);
  if (isPromiseLike(principal)) {
    return Promise.resolve(principal).then((p) =>
      withPrincipal(rt, request, method, clientKey, body, p ?? ''),
    );
  }
  return withPrincipal(rt, request, method, clientKey, body, principal ?? '');
}

function withPrincipal(
  rt: EngineRuntime,
  request: EngineRequest,
  method: string,
  clientKey: string,
  body: Uint8Array,
  principal: string,
): Decision | Promise<Decision> {
  const options = rt.options;
  // Refused before the tenant function runs, as it always was.
  if (principal === '' && options.requirePrincipal) {
    return reject(rt, 'principal-required', 'authenticate before sending a key');
  }
  const tenant = options.tenant ? options.tenant(request.native, request) : '';
  if (isPromiseLike(tenant)) {
    return Promise.resolve(tenant).then((t) =>
      claimAs(rt, request, method, clientKey, body, t ?? '', principal),
    );
  }
  return claimAs(rt, request, method, clientKey, body, tenant ?? '', principal);
}

/** A promise, or any thenable (what `await` would wait for). */
function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function';
}

/** The scope, the fingerprint and the claim of a request whose caller is known. */
function claimAs(
  rt: EngineRuntime,
  request: EngineRequest,
  method: string,
  clientKey: string,
  body: Uint8Array,
  tenant: string,
  principal: string,
): Decision | Promise<Decision> {
  const options = rt.options;
  if (principal === '' && options.requirePrincipal) {
    return reject(rt, 'principal-required', 'authenticate before sending a key');
  }
  const key = scopeHash({ tenant, principal, method, path: request.path, key: clientKey });
  // Counted, so an operator sees how much traffic shares the one anonymous scope.
  if (principal === '') rt.emit({ type: 'anonymous', key });

  const fingerprint = createFingerprint(
    {
      method,
      path: request.path,
      query: request.query ?? '',
      contentType: headerValue(request.headers, 'content-type') ?? '',
      headers:
        options.fingerprintHeaders.length === 0
          ? NO_HEADERS
          : options.fingerprintHeaders.map((h) => [h, headerValue(request.headers, h) ?? '']),
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
  return claimWithinCap(rt, claimant, waitMsOf(options.waitMs(request)), 'keyed requests');
}
