import { Deadline, DeadlineScheduler } from './deadlines.js';
import { StoreUnavailableError } from './errors.js';

/**
 * Store-call timeouts share one ticking timer (see DeadlineScheduler) rather than paying a
 * `setTimeout` and a `clearTimeout` per call; a call that never answers is refused at most one
 * tick (≤ 10 ms, and ≤ a tenth of its timeout) after `timeoutMs`. Pending calls keep the process
 * alive, as their timers did.
 */
const storeCallDeadlines = new DeadlineScheduler({ keepsAlive: true, maxTickMs: 10 });

/** One store call racing its timeout. */
class PendingCall<T> extends Deadline {
  private settled = false;
  private readonly operation: string;
  private readonly timeoutMs: number;
  private readonly resolve: (value: T) => void;
  private readonly reject: (error: unknown) => void;
  private readonly onLateResult: ((value: T) => void) | undefined;

  constructor(
    operation: string,
    timeoutMs: number,
    resolve: (value: T) => void,
    reject: (error: unknown) => void,
    onLateResult: ((value: T) => void) | undefined,
  ) {
    super();
    this.operation = operation;
    this.timeoutMs = timeoutMs;
    this.resolve = resolve;
    this.reject = reject;
    this.onLateResult = onLateResult;
  }

  due(): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(new StoreUnavailableError(`store ${this.operation} timed out after ${this.timeoutMs} ms`));
  }

  answered(value: T): void {
    if (this.settled) {
      this.onLateResult?.(value);
      return;
    }
    this.settled = true;
    storeCallDeadlines.remove(this);
    this.resolve(value);
  }

  failed(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    storeCallDeadlines.remove(this);
    this.reject(error);
  }
}

/**
 * Races a store call against its own timeout. The call itself may
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
    const pending = new PendingCall(operation, timeoutMs, resolve, reject, onLateResult);
    storeCallDeadlines.add(pending, timeoutMs);
    promise.then(
      (value) => pending.answered(value),
      (error: unknown) => pending.failed(error),
    );
  });
}

/**
 * Marks a store whose calls are answered from this process's memory with no I/O (the memory
 * store): such a call cannot hang, so racing it against `storeTimeoutMs` only costs a promise,
 * a deadline and two callbacks per call. The mark is a non-enumerable symbol, so a decorator
 * built by spreading the store (`{ ...memoryStore(), claim: slowClaim }`) does not inherit it
 * and keeps the timeout race its own calls may need.
 */
const IN_PROCESS = Symbol('idemkit.inProcessStore');

export function markInProcess<T extends object>(store: T): T {
  Object.defineProperty(store, IN_PROCESS, { value: true });
  return store;
}

/** Whether `store` answers from this process's memory (see markInProcess): no timeout race needed. */
export function isInProcess(store: object): boolean {
  return (store as { [IN_PROCESS]?: boolean })[IN_PROCESS] === true;
}

/** A store call on the request path: raced against its timeout unless the store is in-process. */
export function storeCall<T>(
  store: object,
  operation: string,
  call: () => Promise<T>,
  timeoutMs: number,
  onLateResult?: (value: T) => void,
): Promise<T> {
  if (!isInProcess(store)) {
    return withTimeout(operation, call, timeoutMs, onLateResult);
  }
  try {
    return call();
  } catch (error) {
    return Promise.reject(error);
  }
}
