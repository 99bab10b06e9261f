import type { IdempotencyOptions } from '../core/options.js';
import type { IdempotencyStore } from '../core/store.js';
import type { ReferenceApp } from './reference-app.js';

export interface StoreHandle {
  store: IdempotencyStore;
  cleanup?: () => Promise<void>;
}

export interface Started {
  url: string;
  close(): Promise<void>;
}

export interface ServedApp {
  url: string;
  app: ReferenceApp;
  /** Calls that reached the store (claims, reads, writes) since the server started. */
  storeCalls(): number;
  close(): Promise<void>;
}

export interface ContractHarness {
  options: {
    it: (name: string, fn: () => Promise<void>) => unknown;
    fuzzRuns?: number;
  };
  /** Starts a fresh server (own store, own app) with the suite's options plus overrides. */
  serve(overrides?: Partial<IdempotencyOptions>): Promise<ServedApp>;
  /** Registers a test that gets a fresh server with these overrides and closes it afterwards. */
  test(
    name: string,
    overrides: Partial<IdempotencyOptions>,
    body: (served: ServedApp) => Promise<void>,
  ): void;
}

export interface Reply {
  status: number;
  headers: Headers;
  bytes: Uint8Array;
  text: string;
  problem: { type?: string; status?: number; detail?: string } | undefined;
}

export const DEFAULT_AUTH = 'Bearer contract-user';

export interface CallOptions {
  key?: string;
  body?: string;
  op: string;
  /** Authorization header; `null` sends none. */
  auth?: string | null;
  headers?: Record<string, string>;
  contentType?: string;
}

export async function call(url: string, method: string, path: string, o: CallOptions): Promise<Reply> {
  const headers: Record<string, string> = {
    'content-type': o.contentType ?? 'application/json',
    'x-op': o.op,
    ...o.headers,
  };
  if (o.key !== undefined) headers['idempotency-key'] = o.key;
  const auth = o.auth === undefined ? DEFAULT_AUTH : o.auth;
  if (auth !== null) headers.authorization = auth;
  const hasBody = method !== 'GET' && method !== 'HEAD';
  const response = await fetch(`${url}${path}`, {
    method,
    headers,
    ...(hasBody ? { body: o.body ?? '' } : {}),
    signal: AbortSignal.timeout(15_000),
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  const text = Buffer.from(bytes).toString('utf8');
  const isProblem = response.headers.get('content-type')?.startsWith('application/problem+json');
  return {
    status: response.status,
    headers: response.headers,
    bytes,
    text,
    problem: isProblem ? (JSON.parse(text) as Reply['problem']) : undefined,
  };
}

export function post(url: string, path: string, o: CallOptions): Promise<Reply> {
  return call(url, 'POST', path, o);
}

export function slow(url: string, key: string, ms: number, op: string): Promise<Reply> {
  return post(url, `/slow?ms=${ms}`, { key, body: '{"slow":true}', op });
}
