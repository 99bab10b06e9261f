import { IdempotencyConfigError } from './errors.js';
import type { IdempotencyEvent } from './events.js';
import { resolveSecrets, type VersionedSecret } from './fingerprint.js';
import { defaultWarning } from './portable.js';
import type { EngineRequest } from './request.js';
import { type EngineResponse, replayAllowlist } from './response.js';
import { type IdempotencyStore, isTransactionalStore } from './store.js';

/** What to do with a handler's response: keep it for replay, free the key, or hold it. */
export type Disposition = 'store' | 'release' | 'uncertain';

export type PerRequest<T> = T | ((request: EngineRequest) => T);

export interface IdempotencyOptions {
  /** Where records live: `memoryStore()`, `sqliteStore()`, `postgresStore()`, `redisStore()`. */
  store: IdempotencyStore;
  /**
   * Server secret for the HMAC fingerprints, or versioned secrets for rotation (the highest
   * version signs new records; every listed version still verifies old ones: keep a retired
   * version for one retention period). Optional only for stores that keep their own
   * (memory, SQLite).
   */
  secret?: string | readonly VersionedSecret[];
  /**
   * Methods that are covered; others pass through untouched.
   * @default ['POST', 'PATCH']
   */
  methods?: readonly string[];
  /**
   * Whether a covered request without a key is refused (400 `missing-key`) or passed through.
   * @default true
   */
  required?: PerRequest<boolean>;
  /** @default 1 */
  minKeyLength?: number;
  /**
   * Other key carriers, tried when the header is absent (query first, then body): an EC2-style
   * query token and an AIP-155 top-level JSON body field, each holding the bare key. They are as
   * strict as the header: a repeated query parameter, or a body field that is present but not a
   * string, is 400 `invalid-key`; a body that is not UTF-8 JSON carries no field.
   */
  keyFrom?: { header?: string; bodyField?: string; queryParam?: string };
  /**
   * The authenticated caller; records of two principals never meet. Receives the framework's
   * own request. Return `undefined` (or '') for an anonymous caller, which `requirePrincipal`
   * refuses by default.
   * @default SHA-256 of the Authorization header (header names are matched case-insensitively)
   */
  principal?: (native: unknown, request: EngineRequest) => string | undefined | Promise<string | undefined>;
  /** The tenant, for multi-tenant apps. @default '' */
  tenant?: (native: unknown, request: EngineRequest) => string | undefined | Promise<string | undefined>;
  /**
   * A keyed request without a principal (no Authorization header, or `principal()` gave
   * `undefined`/'') is refused with 401 `principal-required`. Set `false` to let such requests
   * share one anonymous scope, where equal keys from different callers meet: the engine then
   * warns once at creation (`onWarning`) and emits an `anonymous` event per such request.
   * @default true
   */
  requirePrincipal?: boolean;
  /** @default 30_000 */
  leaseMs?: PerRequest<number>;
  /** How long a completed result is replayed, counted from completion. @default 86_400_000 */
  retentionMs?: PerRequest<number>;
  /** Each store call's own timeout, shorter than any request deadline. @default 1_000 */
  storeTimeoutMs?: number;
  /**
   * Hold a concurrent duplicate up to this long and then replay (or answer 409), instead of
   * answering 409 at once. `true` means 5 000.
   * @default 0 (off)
   */
  wait?: PerRequest<boolean | number>;
  /** @default 1_048_576 */
  maxBodyBytes?: number;
  /** Larger response bodies are not stored; replays get 409 `result-unavailable`. @default 1_048_576 */
  maxStoredBytes?: number;
  /**
   * Keyed requests one principal may have in this process at once (claiming, waiting for a
   * duplicate, or executing); counted from admission, so a burst cannot pass it. @default 1_000
   */
  maxInFlightPerPrincipal?: number;
  /** JSON fields (dotted paths) left out of the fingerprint, e.g. a client timestamp. @default [] */
  excludeFields?: readonly string[];
  /** Request headers included in the fingerprint. @default [] */
  fingerprintHeaders?: readonly string[];
  /** `canonical` compares JSON bodies by meaning, `raw` by bytes. @default 'canonical' */
  fingerprintBody?: 'canonical' | 'raw';
  /** Response headers replayed in addition to the built-in allowlist (per route: a function). @default [] */
  replayHeaders?: PerRequest<readonly string[]>;
  /** Overrides the default store/release policy (`defaultClassify`: 5xx and 401, 403, 408, 409, 425, 429 released, the rest stored). */
  classify?: (response: EngineResponse, request: EngineRequest) => Disposition;
  /**
   * Run handlers inside the store's transaction (`ctx.transaction`), committed together with the
   * result: exactly-once effects for writes to that database. Needs a transactional store
   * (PostgreSQL). @default false
   */
  transactional?: boolean;
  /** Let requests through without idempotency when the store fails (counted). @default false */
  failOpen?: boolean;
  /** Telemetry: execute, replay, conflict, mismatch, release, takeover, lease-lost, … */
  onEvent?: (event: IdempotencyEvent) => void;
  /** One-time warnings (anonymous scope on, single-process store). @default process.emitWarning */
  onWarning?: (message: string) => void;
  /** How often the engine sweeps expired records; 0 turns the sweeper off. @default 60_000 */
  sweepIntervalMs?: number;
}

export const DEFAULTS = Object.freeze({
  methods: Object.freeze(['POST', 'PATCH']),
  required: true,
  minKeyLength: 1,
  keyHeader: 'idempotency-key',
  requirePrincipal: true,
  leaseMs: 30_000,
  retentionMs: 86_400_000,
  storeTimeoutMs: 1_000,
  waitMsWhenOn: 5_000,
  maxBodyBytes: 1_048_576,
  maxStoredBytes: 1_048_576,
  maxInFlightPerPrincipal: 1_000,
  fingerprintBody: 'canonical' as const,
  sweepIntervalMs: 60_000,
  sweepBatch: 1_000,
  maxWaitersPerKey: 64,
});

/** Statuses that describe the moment, not the operation: released, never replayed. */
const MOMENTARY = new Set([401, 403, 408, 409, 425, 429]);

export function defaultClassify(response: EngineResponse): Disposition {
  if (response.status >= 500 || MOMENTARY.has(response.status)) return 'release';
  return 'store';
}

export type ResolvedOptions = ReturnType<typeof resolveOptions>;

/** Fills defaults, validates, turns shorthands into one shape, and freezes the result. */
export function resolveOptions(options: IdempotencyOptions) {
  const store = options.store;
  if (!store || typeof store.claim !== 'function') {
    throw new IdempotencyConfigError('store: pass a store, e.g. memoryStore() or sqliteStore({ path })');
  }
  if (options.secret === undefined && typeof store.defaultSecret !== 'function') {
    throw new IdempotencyConfigError(
      `secret: the ${store.name} store is shared across hosts, so every process needs the same secret; pass secret (e.g. from IDEMKIT_SECRET)`,
    );
  }
  const wait = options.wait ?? 0;
  const resolved = {
    store,
    secrets: options.secret === undefined ? undefined : resolveSecrets(options.secret),
    methods: new Set((options.methods ?? DEFAULTS.methods).map((m) => m.toUpperCase())),
    required: toFunction(options.required ?? DEFAULTS.required),
    minKeyLength: positiveInt('minKeyLength', options.minKeyLength ?? DEFAULTS.minKeyLength),
    keyHeader: (options.keyFrom?.header ?? DEFAULTS.keyHeader).toLowerCase(),
    keyBodyField: options.keyFrom?.bodyField,
    keyQueryParam: options.keyFrom?.queryParam,
    principal: options.principal,
    tenant: options.tenant,
    requirePrincipal: options.requirePrincipal ?? DEFAULTS.requirePrincipal,
    leaseMs: toFunction(options.leaseMs ?? DEFAULTS.leaseMs),
    retentionMs: toFunction(options.retentionMs ?? DEFAULTS.retentionMs),
    storeTimeoutMs: positiveInt('storeTimeoutMs', options.storeTimeoutMs ?? DEFAULTS.storeTimeoutMs),
    waitMs: toFunction(wait),
    maxBodyBytes: positiveInt('maxBodyBytes', options.maxBodyBytes ?? DEFAULTS.maxBodyBytes),
    maxStoredBytes: nonNegativeInt('maxStoredBytes', options.maxStoredBytes ?? DEFAULTS.maxStoredBytes),
    maxInFlightPerPrincipal: positiveInt(
      'maxInFlightPerPrincipal',
      options.maxInFlightPerPrincipal ?? DEFAULTS.maxInFlightPerPrincipal,
    ),
    fingerprint: Object.freeze({
      excludeFields: Object.freeze([...(options.excludeFields ?? [])]),
      bodyMode: options.fingerprintBody ?? DEFAULTS.fingerprintBody,
    }),
    fingerprintHeaders: Object.freeze((options.fingerprintHeaders ?? []).map((h) => h.toLowerCase())),
    replayAllowlist: allowlistResolver(options.replayHeaders ?? []),
    classify: options.classify ?? defaultClassify,
    failOpen: options.failOpen ?? false,
    transactional: options.transactional ?? false,
    onEvent: options.onEvent,
    onWarning: options.onWarning ?? defaultWarning,
    sweepIntervalMs: nonNegativeInt('sweepIntervalMs', options.sweepIntervalMs ?? DEFAULTS.sweepIntervalMs),
  };
  if (resolved.transactional && !isTransactionalStore(store)) {
    throw new IdempotencyConfigError(
      `transactional: the ${store.name} store has no transactions; use postgresStore`,
    );
  }
  if (!['canonical', 'raw'].includes(resolved.fingerprint.bodyMode)) {
    throw new IdempotencyConfigError(
      `fingerprintBody: 'canonical' or 'raw', got ${resolved.fingerprint.bodyMode}`,
    );
  }
  for (const name of ['leaseMs', 'retentionMs'] as const) {
    const value = options[name];
    if (typeof value === 'number') positiveInt(name, value);
  }
  return Object.freeze(resolved);
}

/** Resolves `wait` (boolean or milliseconds) to milliseconds. */
export function waitMsOf(wait: boolean | number): number {
  if (wait === true) return DEFAULTS.waitMsWhenOn;
  if (wait === false) return 0;
  return wait;
}

/** One allowlist set per distinct header list (routes keep their list, so this stays small). */
function allowlistResolver(
  headers: PerRequest<readonly string[]>,
): (request: EngineRequest) => ReadonlySet<string> {
  if (typeof headers !== 'function') {
    const set = replayAllowlist(headers);
    return () => set;
  }
  const sets = new WeakMap<readonly string[], ReadonlySet<string>>();
  return (request) => {
    const list = headers(request);
    let set = sets.get(list);
    if (!set) {
      set = replayAllowlist(list);
      sets.set(list, set);
    }
    return set;
  };
}

function toFunction<T>(value: PerRequest<T>): (request: EngineRequest) => T {
  return typeof value === 'function' ? (value as (request: EngineRequest) => T) : () => value;
}

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new IdempotencyConfigError(`${name}: expected a positive integer, got ${String(value)}`);
  }
  return value;
}

function nonNegativeInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) {
    throw new IdempotencyConfigError(`${name}: expected a non-negative integer, got ${String(value)}`);
  }
  return value;
}
