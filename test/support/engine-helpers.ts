import type { EngineRequest, EngineResponse, IdempotencyStore } from '../../src/index.js';

export function request(overrides: Partial<EngineRequest> & { key?: string | null } = {}): EngineRequest {
  const { key = 'key-1', ...rest } = overrides;
  const headers: Record<string, string> = { 'content-type': 'application/json', authorization: 'Bearer u1' };
  if (key !== null) headers['idempotency-key'] = key;
  return { method: 'POST', path: '/pay', query: '', headers, body: Buffer.from('{"amount":1}'), ...rest };
}

export function response(status = 201, body = '{"ok":true}'): EngineResponse {
  return { status, headers: [['content-type', 'application/json']], body: Buffer.from(body) };
}

/** A manual clock for stores that take one. */
export function manualClock(start = 1_700_000_000_000) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

/**
 * Wraps a real store so a test can make its calls fail or hang on demand: the store-error
 * injector for stores without a network hop (the store faults of docs/guarantees.md). Test-only.
 */
export function faultyStore(store: IdempotencyStore) {
  const faults = new Map<string, 'throw' | 'hang'>();
  const wrap =
    (name: keyof IdempotencyStore) =>
    (...args: unknown[]): Promise<unknown> => {
      const fault = faults.get(name);
      if (fault === 'throw')
        return Promise.reject(new Error(`injected ${name} failure: ECONNREFUSED 10.0.0.1`));
      const real = (store[name] as (...a: unknown[]) => Promise<unknown>).apply(store, args);
      if (fault === 'hang') return new Promise((resolve) => setTimeout(() => resolve(real), 1_500));
      return real;
    };
  const wrapped = {
    name: store.name,
    claim: wrap('claim'),
    heartbeat: wrap('heartbeat'),
    complete: wrap('complete'),
    release: wrap('release'),
    markUncertain: wrap('markUncertain'),
    get: wrap('get'),
    delete: wrap('delete'),
    sweep: wrap('sweep'),
    defaultSecret: () => (store.defaultSecret as () => Promise<string>)(),
    close: () => store.close(),
  } as IdempotencyStore;
  return {
    store: wrapped,
    fail(operation: string, mode: 'throw' | 'hang' = 'throw') {
      faults.set(operation, mode);
    },
    heal() {
      faults.clear();
    },
  };
}
