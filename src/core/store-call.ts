import { StoreUnavailableError } from './errors.js';

/**
 * Races a store call against its own timeout (architecture.md §2 item 11). The call itself may
 * still settle later; `onLateResult` sees that value, which the engine uses to release a claim
 * that was granted after the caller had already answered 503.
 */
export function withTimeout<T>(
  operation: string,
  call: () => Promise<T>,
  timeoutMs: number,
  onLateResult?: (value: T) => void,
): Promise<T> {
  let promise: Promise<T>;
  try {
    promise = call();
  } catch (error) {
    return Promise.reject(error);
  }
  return new Promise<T>((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      reject(new StoreUnavailableError(`store ${operation} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    promise.then(
      (value) => {
        clearTimeout(timer);
        if (timedOut) onLateResult?.(value);
        else resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (!timedOut) reject(error);
      },
    );
  });
}
