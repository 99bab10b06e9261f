import { type IdempotencyStore, isTransactionalStore, type TransactionalStore } from '../core/store.js';

/**
 * Wraps a real store and counts the calls that reach it, so a test can prove that a rejected
 * request (bad key, oversized body, missing credentials) never touched the store. Not a mock:
 * every call goes through to the real store.
 */
export function countingStore(store: IdempotencyStore): { store: IdempotencyStore; calls(): number } {
  let calls = 0;
  const counted = <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    function countedCall(...args: A): Promise<R> {
      calls++;
      return fn.apply(store, args);
    };
  const wrapped: IdempotencyStore = {
    name: store.name,
    claim: counted(store.claim),
    heartbeat: counted(store.heartbeat),
    complete: counted(store.complete),
    release: counted(store.release),
    markUncertain: counted(store.markUncertain),
    get: counted(store.get),
    delete: counted(store.delete),
    sweep: counted(store.sweep),
    close: () => store.close(),
  };
  if (store.check) wrapped.check = store.check.bind(store);
  if (isTransactionalStore(store)) {
    (wrapped as TransactionalStore).beginTransaction = counted(store.beginTransaction);
  }
  // Reading the secret is setup, not a request's store call.
  if (store.defaultSecret) wrapped.defaultSecret = store.defaultSecret.bind(store);
  // Subscribing to settle notifications is not a round trip to the store: forwarded, not counted.
  if (store.onSettled) wrapped.onSettled = store.onSettled.bind(store);
  return { store: wrapped, calls: () => calls };
}
