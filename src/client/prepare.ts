import { randomUUID } from 'node:crypto';
import { type AttemptBody, type BodyFactory, bufferBody } from './body.js';
import { checkKey, placeKey } from './carrier.js';
import { ClientConfigError } from './errors.js';
import {
  HEADER_CARRIER,
  type PolicyInput,
  policyForMethod,
  type RetryPolicy,
  resolvePolicy,
} from './policy.js';
import { bestMatch, type CompiledRoute, firstMatch } from './routes.js';
import type { Operation } from './run.js';

/** `fetch`'s options plus the client's own, per call. */
export interface ClientInit extends Omit<RequestInit, 'body'> {
  /** A body, buffered once; or a factory called for every attempt (a stream that cannot be buffered). */
  body?: BodyInit | null | BodyFactory;
  /** A JSON body (serialised once, `content-type: application/json` unless set). */
  json?: unknown;
  /** The operation's key; a random UUID when absent. One key per logical operation, never per attempt. */
  idempotencyKey?: string;
  /** This call's policy, before routes, the OpenAPI document and the method default. */
  policy?: PolicyInput;
  retries?: number;
  timeoutMs?: number;
  deadlineMs?: number;
  /** `false` keeps this call out of the journal. @default true */
  journal?: boolean;
}

/** Where policies come from, in order after the call's own. */
export interface PolicySources {
  baseUrl: URL | undefined;
  headers: readonly [string, string][];
  routes: readonly CompiledRoute[];
  discovered: { routes: readonly CompiledRoute[]; basePaths: readonly string[] } | undefined;
  nonIdempotentMethods: 'keyed' | 'unsafe';
}

/** Builds the one request every attempt of the operation sends, with its key in place. */
export async function prepareOperation(
  sources: PolicySources,
  path: string | URL,
  init: ClientInit,
): Promise<Operation> {
  const method = (init.method ?? 'GET').toUpperCase();
  const url = resolveUrl(sources.baseUrl, path);
  const policy = init.policy ? resolvePolicy(init.policy, 'fetch()') : policyOf(sources, method, url);
  const headers = new Headers(sources.headers as [string, string][]);
  for (const [name, value] of new Headers(init.headers)) headers.set(name, value);

  let bytes: Uint8Array | undefined;
  let factory: BodyFactory | undefined;
  if (init.json !== undefined) {
    if (init.body !== undefined && init.body !== null)
      throw new ClientConfigError('fetch(): pass body or json, not both');
    bytes = new TextEncoder().encode(JSON.stringify(init.json));
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
  } else if (typeof init.body === 'function') {
    factory = init.body;
  } else if (init.body !== undefined && init.body !== null) {
    const buffered = await bufferBody(init.body);
    bytes = buffered.bytes;
    if (!headers.has('content-type') && buffered.contentType)
      headers.set('content-type', buffered.contentType);
  }

  let key = init.idempotencyKey === undefined ? undefined : checkKey(init.idempotencyKey);
  let body: AttemptBody = factory ? async () => (factory as BodyFactory)() : bytes;
  if (policy.kind === 'keyed') {
    const carrier = policy.carrier;
    if (factory && carrier.in === 'body') {
      // The key must go into each rebuilt body: decide it once, insert it per attempt.
      const fixed = key ?? randomUUID();
      key = fixed;
      body = async () => {
        const rebuilt = await bufferBody(await (factory as BodyFactory)());
        return placeKey(carrier, { url, headers: new Headers(headers), body: rebuilt.bytes }, fixed)
          .body as BodyInit;
      };
    } else {
      const placed = placeKey(carrier, { url, headers, body: bytes }, key);
      key = placed.key;
      if (!factory) body = placed.body;
    }
  } else if (key !== undefined && !headers.has(HEADER_CARRIER.name)) {
    // Sent for the server's logs and de-duplication, if it has any; retries still follow the policy.
    headers.set(HEADER_CARRIER.name, key);
  }
  const {
    method: _method,
    headers: _headers,
    body: _body,
    json: _json,
    signal: _signal,
    idempotencyKey: _key,
    policy: _policy,
    retries: _retries,
    timeoutMs: _timeoutMs,
    deadlineMs: _deadlineMs,
    journal: _journal,
    ...fetchOptions
  } = init;
  return { method, url: url.href, headers: [...headers], body, policy, key, fetchOptions };
}

/** The policy of a call without its own: routes, then the document, then the method. */
export function policyFor(sources: PolicySources, method: string, path: string | URL): RetryPolicy {
  return policyOf(sources, method.toUpperCase(), resolveUrl(sources.baseUrl, path));
}

function policyOf(sources: PolicySources, method: string, url: URL): RetryPolicy {
  const relative = stripPrefix(url.pathname, sources.baseUrl?.pathname);
  const route = firstMatch(sources.routes, method, relative);
  if (route) return route.policy;
  const discovered = sources.discovered;
  if (discovered) {
    // Spec paths are relative to the document's servers: `/payments` under `https://…/v71`.
    const candidates = [relative, ...discovered.basePaths.map((prefix) => stripPrefix(relative, prefix))];
    for (const candidate of candidates) {
      const operation = bestMatch(discovered.routes, method, candidate);
      if (operation) return operation.policy;
    }
  }
  return policyForMethod(method, sources.nonIdempotentMethods);
}

function stripPrefix(path: string, prefix: string | undefined): string {
  const trimmed = prefix?.replace(/\/+$/, '');
  if (!trimmed) return path;
  if (path === trimmed) return '/';
  return path.startsWith(`${trimmed}/`) ? path.slice(trimmed.length) : path;
}

const ABSOLUTE = /^[a-z][a-z\d+.-]*:/i;

/** `baseUrl` is a prefix (ky's `prefixUrl`): `/charges` under `https://api.example/v1` is `…/v1/charges`. */
function resolveUrl(base: URL | undefined, path: string | URL): URL {
  if (path instanceof URL) return new URL(path.href);
  if (ABSOLUTE.test(path)) return new URL(path);
  if (!base) throw new ClientConfigError(`fetch(${JSON.stringify(path)}): a relative path needs baseUrl`);
  const prefix = `${base.origin}${base.pathname.replace(/\/+$/, '')}`;
  return new URL(`${prefix}/${path.replace(/^\/+/, '')}`);
}
