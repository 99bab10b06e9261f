import { StoreUnavailableError } from '../../src/core/errors.js';
import type {
  ClaimRequest,
  ClaimResult,
  CompleteRequest,
  HeartbeatRequest,
  IdempotencyStore,
  MarkUncertainRequest,
  ReleaseRequest,
  StoredRecord,
} from '../../src/core/store.js';
import { type MemoryStore, memoryStore } from '../../src/stores/memory.js';

/**
 * The simulated store: the real memory store (its claim predicate, CAS on the owner token,
 * tombstones) on the simulation's store clock, reached by every engine instance through its own
 * `Connection`. A connection does not call the store when the engine does: it parks the call,
 * and the scheduler later delivers it in one of four ways (see `Delivery`). Every call that
 * reached the store is logged with the store time it was applied at and its real result, which
 * is what the checker judges I1, I4 and I8 by.
 */

/** Deliberately broken stores, for the negative controls. */
export type StoreVariant =
  | 'correct'
  /** A claim that meets a live in-progress record takes the key anyway (breaks I1). */
  | 'claim-ignores-in-progress'
  /** A completion that does not check the owner token: a stale owner's write lands (breaks I8). */
  | 'complete-ignores-owner';

export type StoreOpKind = 'claim' | 'heartbeat' | 'complete' | 'release' | 'markUncertain' | 'sweep';

/** One store call as the checker reads it: applied (with its real result) or failed before. */
export interface StoreOp {
  seq: number;
  instance: number;
  op: StoreOpKind;
  key: string;
  /** The owner token, as a small number in order of first appearance (tokens are random). */
  token: number;
  /** Fingerprint, as a small number in order of first appearance (claims only). */
  print?: number;
  /** Store time the call was applied at. */
  at: number;
  leaseMs?: number;
  retentionMs?: number;
  /**
   * claim: 'acquired' | 'in_progress' | 'completed'; writes: 'true' | 'false'; 'error' when the
   * store threw; 'not-applied' when the call failed before it reached the store.
   */
  result: string;
  generation?: number;
  /** Whether the engine got the answer: ack, an error after the write (ack-lost), or never (hang). */
  answer: 'ack' | 'ack-lost' | 'hang' | 'crashed' | 'failed';
}

/**
 * How a parked call ends: `ack` applies it and answers; `fail` answers an error without
 * applying it; `ack-lost` applies it, then answers an error (the reply was lost); `hang` applies
 * it and never answers (the engine's own store timeout ends the wait).
 */
export type Delivery = 'ack' | 'fail' | 'ack-lost' | 'hang';

export interface ParkedCall {
  id: number;
  instance: number;
  op: StoreOpKind;
  key: string;
  deliver(mode: Delivery): void;
}

export interface ClaimAck {
  key: string;
  token: number;
  generation: number;
}

export class SharedStore {
  readonly inner: MemoryStore;
  readonly log: StoreOp[] = [];
  readonly parked: ParkedCall[] = [];
  private readonly variant: StoreVariant;
  private readonly tokens = new Map<string, number>();
  private readonly prints = new Map<string, number>();
  /** Broken-complete variant only: the token of each key's latest acquired claim. */
  private readonly latestOwner = new Map<string, string>();
  private nextCall = 1;
  readonly now: () => number;

  constructor(now: () => number, variant: StoreVariant) {
    this.now = now;
    this.variant = variant;
    this.inner = memoryStore({ clock: now, onWarning() {} });
  }

  tokenId(token: string): number {
    let id = this.tokens.get(token);
    if (id === undefined) {
      id = this.tokens.size + 1;
      this.tokens.set(token, id);
    }
    return id;
  }

  printId(print: string): number {
    let id = this.prints.get(print);
    if (id === undefined) {
      id = this.prints.size + 1;
      this.prints.set(print, id);
    }
    return id;
  }

  /** Parks a call; the scheduler delivers it. */
  park<T>(
    instance: number,
    op: StoreOpKind,
    request: { key: string; token: string; leaseMs?: number; retentionMs?: number; fingerprint?: string },
    apply: () => Promise<T>,
    onAck: (value: T) => void,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const call: ParkedCall = {
        id: this.nextCall++,
        instance,
        op,
        key: request.key,
        deliver: (mode) => {
          const entry: StoreOp = {
            seq: this.log.length,
            instance,
            op,
            key: request.key,
            token: this.tokenId(request.token),
            at: this.now(),
            result: mode === 'fail' ? 'not-applied' : 'error',
            answer: mode === 'fail' ? 'failed' : mode,
          };
          if (request.fingerprint !== undefined) entry.print = this.printId(request.fingerprint);
          if (request.leaseMs !== undefined) entry.leaseMs = request.leaseMs;
          if (request.retentionMs !== undefined) entry.retentionMs = request.retentionMs;
          this.log.push(entry);
          if (mode === 'fail') {
            reject(new StoreUnavailableError(`sim: ${op} failed before it reached the store`));
            return;
          }
          apply().then(
            (value) => {
              entry.result = describe(value);
              const generation = (value as { generation?: number } | undefined)?.generation;
              if (typeof generation === 'number') entry.generation = generation;
              if (mode === 'ack') {
                onAck(value);
                resolve(value);
              } else if (mode === 'ack-lost') {
                reject(new StoreUnavailableError(`sim: the answer to ${op} was lost after it was applied`));
              }
            },
            (error: unknown) => reject(error),
          );
        },
      };
      this.parked.push(call);
    });
  }

  /** The sweeper's calls are not parked (they decide nothing), but logged: they delete records. */
  sweep(instance: number, limit: number): Promise<number> {
    const entry: StoreOp = {
      seq: this.log.length,
      instance,
      op: 'sweep',
      key: '',
      token: 0,
      at: this.now(),
      result: 'error',
      answer: 'ack',
    };
    this.log.push(entry);
    return this.inner.sweep(limit).then((deleted) => {
      entry.result = String(deleted);
      return deleted;
    });
  }

  /** Takes a parked call out of the queue (the scheduler then delivers it). */
  take(index: number): ParkedCall {
    const [call] = this.parked.splice(index, 1);
    if (!call) throw new Error('sim: no such parked call');
    return call;
  }

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    let result = await this.inner.claim(request);
    if (this.variant === 'claim-ignores-in-progress' && result.outcome === 'in_progress') {
      // Broken on purpose: throws the live record away and claims over it.
      await this.inner.delete(request.key);
      result = await this.inner.claim(request);
    }
    if (result.outcome === 'acquired') this.latestOwner.set(request.key, request.token);
    return result;
  }

  async complete(request: CompleteRequest): Promise<boolean> {
    const owned = await this.inner.complete(request);
    if (owned || this.variant !== 'complete-ignores-owner') return owned;
    // Broken on purpose: completes whoever holds the key now, on behalf of a stale token.
    const holder = this.latestOwner.get(request.key);
    if (holder === undefined || holder === request.token) return false;
    return this.inner.complete({ ...request, token: holder });
  }
}

function describe(value: unknown): string {
  if (typeof value === 'boolean') return String(value);
  if (value && typeof value === 'object' && 'outcome' in value) return String(value.outcome);
  return 'other';
}

/**
 * One engine instance's connection to the shared store. When the instance crashes, its calls
 * still parked end as the crash decides (applied or not, never answered), and every later call
 * fails at once: a dead process sends nothing.
 */
export class Connection implements IdempotencyStore {
  readonly name = 'sim';
  dead = false;
  /** The last acquired claim this connection answered (checked against each execution, I9). */
  lastClaimAck: ClaimAck | undefined;
  private readonly shared: SharedStore;
  readonly instance: number;

  constructor(shared: SharedStore, instance: number) {
    this.shared = shared;
    this.instance = instance;
  }

  private down(op: string): Promise<never> {
    return Promise.reject(new StoreUnavailableError(`sim: instance ${this.instance} is down (${op})`));
  }

  claim(request: ClaimRequest): Promise<ClaimResult> {
    if (this.dead) return this.down('claim');
    return this.shared.park(
      this.instance,
      'claim',
      request,
      () => this.shared.claim(request),
      (result) => {
        if (result.outcome === 'acquired') {
          this.lastClaimAck = {
            key: request.key,
            token: this.shared.tokenId(request.token),
            generation: result.generation,
          };
        }
      },
    );
  }

  heartbeat(request: HeartbeatRequest): Promise<boolean> {
    if (this.dead) return this.down('heartbeat');
    return this.shared.park(
      this.instance,
      'heartbeat',
      request,
      () => this.shared.inner.heartbeat(request),
      noop,
    );
  }

  complete(request: CompleteRequest): Promise<boolean> {
    if (this.dead) return this.down('complete');
    return this.shared.park(this.instance, 'complete', request, () => this.shared.complete(request), noop);
  }

  release(request: ReleaseRequest): Promise<boolean> {
    if (this.dead) return this.down('release');
    return this.shared.park(
      this.instance,
      'release',
      request,
      () => this.shared.inner.release(request),
      noop,
    );
  }

  markUncertain(request: MarkUncertainRequest): Promise<boolean> {
    if (this.dead) return this.down('markUncertain');
    return this.shared.park(
      this.instance,
      'markUncertain',
      request,
      () => this.shared.inner.markUncertain(request),
      noop,
    );
  }

  get(key: string): Promise<StoredRecord | undefined> {
    if (this.dead) return this.down('get');
    return this.shared.inner.get(key);
  }

  delete(key: string): Promise<boolean> {
    if (this.dead) return this.down('delete');
    return this.shared.inner.delete(key);
  }

  sweep(limit: number): Promise<number> {
    if (this.dead) return this.down('sweep');
    return this.shared.sweep(this.instance, limit);
  }

  async close(): Promise<void> {}
}

function noop(): void {}
