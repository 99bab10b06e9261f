/**
 * The store contract: the port the engine depends on. Every store (memory, SQLite, PostgreSQL,
 * Redis, third-party) implements exactly this interface and passes `defineStoreContract` from
 * `idemkit/testing`.
 *
 * Stores own atomicity and persistence; the engine owns policy (what to store, when to release,
 * which status to answer). Stores receive durations, never absolute deadlines, and turn them into
 * deadlines with their own clock, so app-server clock skew never decides a lease.
 */

/** Record states as they are written into SQL, Lua and JSON. */
export const RecordState = {
  InProgress: 'in_progress',
  Completed: 'completed',
  Uncertain: 'uncertain',
  /** A release tombstone: a claim treats it as absent, but its generation survives. */
  Released: 'released',
} as const;
export type RecordState = (typeof RecordState)[keyof typeof RecordState];

/** A response as the store keeps it. Headers are already filtered by the engine's allowlist. */
export interface StoredResponse {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
  /** True when the body was larger than `maxStoredBytes`; `body` is then empty. */
  bodyOmitted?: boolean;
  /** Hex SHA-256 of the body that was sent, kept when the body itself was omitted. */
  bodySha256?: string;
}

/** What `get()` and a losing `claim()` hand back. The owner token is never exposed. */
export interface StoredRecord {
  /** The store key: a hash of the scope, never the client's raw key. */
  key: string;
  state: RecordState;
  /** `<secret version>:<HMAC>` of the request that made the record. */
  fingerprint: string;
  /** Rises by one on every claim and takeover; exposed to handlers as `fencingToken`. */
  generation: number;
  /** Store time (epoch ms) until which an in-progress claim is held. */
  leaseUntil: number;
  /** Store time after which the record may be swept (and a completed key is new again). */
  expiresAt: number;
  createdAt: number;
  completedAt: number | null;
  /** Present for `completed` records. */
  response?: StoredResponse;
}

/*
 * The lease timeline every claim implementation follows:
 *
 * store time ─────────────────────────────────────────────────────────────────────────────▶
 * claim(A): in_progress, leaseUntil = now + leaseMs; A's heartbeats push leaseUntil forward
 *   │ meanwhile: other claims get in_progress (409)
 *   ├─ A completes in time ─▶ completed; retries replay until expiresAt (completedAt + retention),
 *   │                         then the key is new again
 *   ├─ A releases ──────────▶ tombstone (generation kept); the next claim acquires at generation + 1
 *   └─ A stops heartbeating ─▶ lease lapses; claim(B) with the same fingerprint takes over,
 *                              generation + 1; a late complete(A) is refused: token A no longer
 *                              owns the key
 *
 * Claim predicate (identical in every store): acquire when there is no record, or a release
 * tombstone, or any record past expiresAt (for an abandoned in-progress record that is its lease
 * plus the orphan horizon, so stores that expire by TTL and stores that sweep agree), or an
 * in-progress record whose lease has lapsed AND whose fingerprint equals the claimant's.
 * Otherwise hand back the record. Every time comparison is `<=` (at the deadline it has passed).
 * A claim that acquires resets createdAt; generations restart at 1 once a record is swept.
 */
export type ClaimResult =
  /**
   * New key, tombstone, expired record, or a lapsed lease taken over. `takeover` is true in the
   * last case (a crashed or paused holder), for the `takeover` event; stores may omit it.
   */
  | { outcome: 'acquired'; generation: number; takeover?: boolean }
  /** Someone holds a live lease (or a lapsed one with another fingerprint). */
  | { outcome: 'in_progress'; record: StoredRecord }
  /** Completed or uncertain, within retention: the engine replays or answers 409. */
  | { outcome: 'completed'; record: StoredRecord };

export interface ClaimRequest {
  key: string;
  fingerprint: string;
  /** 128-bit random owner token of this attempt; every later write is a CAS on it. */
  token: string;
  leaseMs: number;
  /**
   * How long an abandoned in-progress record is kept after its lease ends before a sweep may
   * delete it (the orphan horizon). The engine passes its `retentionMs`.
   */
  retentionMs: number;
  /**
   * Who the record is for, as an opaque short hash of tenant + principal (never the principal
   * itself); the engine passes it on every claim. A store may cap the live records (and bytes)
   * of one partition, so one caller cannot fill it for everyone: it then throws `CapacityError`
   * for a claim that would add a record, and the engine answers that caller 429 `capacity`.
   * The memory store does (`maxEntriesPerPrincipal`). SQLite, PostgreSQL and Redis ignore it:
   * their storage is bounded by claim rate × retention, and bounding the rate per caller is the
   * job of the rate limiter in front. Absent: no per-partition cap.
   */
  partition?: string;
}

export interface HeartbeatRequest {
  key: string;
  token: string;
  leaseMs: number;
  retentionMs: number;
}

export interface CompleteRequest {
  key: string;
  token: string;
  response: StoredResponse;
  /** Retention counts from completion: expiresAt = store now + retentionMs. */
  retentionMs: number;
}

export interface ReleaseRequest {
  key: string;
  token: string;
  /** How long the tombstone (and with it the generation) is kept. */
  retentionMs: number;
}

export interface MarkUncertainRequest {
  key: string;
  token: string;
  retentionMs: number;
}

export interface IdempotencyStore {
  /** A short name for logs and errors: `memory`, `sqlite`, `postgres`, `redis`. */
  readonly name: string;
  /**
   * Claims a key atomically in one round trip. The loser gets the current record in the same
   * call. Throws only when the store cannot answer (the engine then fails closed with 503), or
   * `CapacityError` when the request's partition holds its share (the engine answers 429).
   */
  claim(request: ClaimRequest): Promise<ClaimResult>;
  /** Renews the lease. `false` when `token` no longer owns the key (lease lost). */
  heartbeat(request: HeartbeatRequest): Promise<boolean>;
  /** Stores the final response. `false` when `token` no longer owns the key (fenced). */
  complete(request: CompleteRequest): Promise<boolean>;
  /** Leaves a tombstone that keeps the generation. `false` when `token` is not the owner. */
  release(request: ReleaseRequest): Promise<boolean>;
  /** Effects may have begun and the outcome is unknown: hold the key as `uncertain`. */
  markUncertain(request: MarkUncertainRequest): Promise<boolean>;
  /** Reads a record (for inspection and waits); `undefined` when absent or swept. */
  get(key: string): Promise<StoredRecord | undefined>;
  /** Deletes a record whatever its state (operator purge). `true` when one was deleted. */
  delete(key: string): Promise<boolean>;
  /**
   * Deletes at most `limit` records whose `expiresAt` has passed; never a live lease.
   * Returns how many it deleted; the engine calls it again while it returns `limit`.
   */
  sweep(limit: number): Promise<number>;
  /** Startup check of the store's configuration; throws `StoreMisconfiguredError`. */
  check?(): Promise<void>;
  /**
   * A fingerprint secret the store can keep for every process that shares it (SQLite keeps one
   * in its meta table; memory makes one per process). Stores shared across hosts omit it, and
   * the engine then requires `secret`.
   */
  defaultSecret?(): Promise<string>;
  /**
   * Optional: wakes duplicates that wait (`wait` mode) in other processes. Calls `listener` when
   * the record of `key` may have settled (completed, released, marked uncertain) through any
   * store instance sharing the data, and also when notifications may have been missed (the
   * channel connected, reconnected or dropped): the engine then claims again. One channel per
   * store instance serves every key. Returns the unsubscribe function, or `undefined` when the
   * store cannot notify right now (the engine then polls at its normal cadence). Never throws;
   * a lost notification costs only time, since waiters keep polling slowly as a safety net.
   */
  onSettled?(key: string, listener: () => void): (() => void) | undefined;
  /** Frees what the store made (timers, handles it opened). Safe to call twice. */
  close(): Promise<void>;
}

/** Store time source for memory and SQLite: epoch milliseconds. Tests inject their own. */
export type Clock = () => number;

/**
 * Transactional mode: the claim commits on its own; then the
 * handler's writes and the completion's owner-token compare-and-set commit together, so a crash
 * before COMMIT leaves neither and a stale owner's writes roll back.
 */
export interface StoreTransaction<Client = unknown> {
  /** The handle the handler writes through (`ctx.transaction`). */
  readonly client: Client;
  /**
   * Writes the completion as a CAS on the owner token inside the transaction, then COMMITs.
   * `committed`: both landed. `lease-lost`: the CAS failed, everything was rolled back.
   * `unknown`: the COMMIT was sent but its answer was lost. Throws when the COMMIT failed and
   * everything was rolled back.
   */
  commit(request: CompleteRequest): Promise<'committed' | 'lease-lost' | 'unknown'>;
  /** Rolls the handler's writes back and frees the connection. Safe after commit(). */
  rollback(): Promise<void>;
}

export interface TransactionalStore<Client = unknown> extends IdempotencyStore {
  /** Opens the transaction the handler will write through; called right after an acquired claim. */
  beginTransaction(request: { key: string; token: string }): Promise<StoreTransaction<Client>>;
}

export function isTransactionalStore(store: IdempotencyStore): store is TransactionalStore {
  return typeof (store as Partial<TransactionalStore>).beginTransaction === 'function';
}
