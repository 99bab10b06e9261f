import { IdempotencyConfigError } from '../core/errors.js';
import type { IdempotencyStore } from '../core/store.js';
import { type CaseContext, defineContractCases } from './store-contract-cases.js';
import { LONG_MS, passStoreTime, randomToken } from './store-contract-fixtures.js';
import { runStoreModel } from './store-contract-model.js';

/** A test body as the suite hands it to the runner. */
export type ContractTestBody = () => Promise<void>;

/**
 * The runner's `it` or `test`, typed by the two calls the suite makes, so `node:test`, vitest,
 * jest and mocha all fit as they are.
 */
export interface ContractTestFunction {
  (name: string, body: ContractTestBody): unknown;
  /** Used for cases a backend declares it cannot pass; without it the reason is only printed. */
  skip?: (name: string, body: ContractTestBody) => unknown;
}

/** What `create()` hands the suite for one test. */
export interface StoreContractHarness {
  store: IdempotencyStore;
  /**
   * Moves the store's injected clock. Without it (PostgreSQL, Redis on store time), expiry
   * cases use short leases and poll for the expected state.
   */
  clock?: { advance(ms: number): void };
  /** Frees what the harness made (pools, temp files). Called after `store.close()`. */
  cleanup?: () => Promise<void>;
}

/** Flags for what a backend cannot do; each skipped case names the flag as its reason. */
export interface StoreCapabilities {
  /**
   * The backend deletes records by itself at `expiresAt` (e.g. Redis key TTLs): an expired
   * record vanishes from `get`, a key past retention starts again at generation 1, and `sweep`
   * may have nothing left to count, so the case that counts sweep's deletions is skipped.
   * @default false
   */
  expiresByTtl?: boolean;
}

export interface StoreContractOptions {
  /** Shown in the suite's title: `idemkit store contract: <name>`. */
  name: string;
  /** The runner's `describe`. */
  describe: (name: string, body: () => void) => unknown;
  /** The runner's `it`; pass this or `test`. */
  it?: ContractTestFunction;
  /** The runner's `test`; pass this or `it`. */
  test?: ContractTestFunction;
  /** Makes a fresh store for one test. Suites may share a database: every test uses random keys. */
  create: () => Promise<StoreContractHarness>;
  capabilities?: StoreCapabilities;
  /**
   * Runs of the model-based test (T51); networked stores may pass fewer.
   * @default 100
   */
  modelRuns?: number;
  /** Replays a failing model run: the seed (and path) the failure printed. */
  modelReplay?: { seed: number; path?: string };
}

/**
 * Defines the store contract suite: every promise of `IdempotencyStore` (types.ts), checked
 * against a real store, plus a model-based run (docs/guarantees.md T51). Call it at the top level
 * of a test file.
 * @example
 * import { describe, it } from 'node:test'
 * defineStoreContract({ name: 'memory', describe, it, create: async () => ({ store: memoryStore() }) })
 */
export function defineStoreContract(options: StoreContractOptions): void {
  const it = options.it ?? options.test;
  if (!it) throw new IdempotencyConfigError('defineStoreContract: pass `it` or `test` from your test runner');
  const expiresByTtl = options.capabilities?.expiresByTtl ?? false;

  function test(name: string, body: (context: CaseContext) => Promise<void>): void {
    (it as ContractTestFunction)(name, async () => {
      const harness = await options.create();
      const { store, clock } = harness;
      try {
        await body({
          store,
          clock,
          pass: (ms) => passStoreTime(store, clock, ms),
          request: (key, fingerprint, overrides) => ({
            key,
            fingerprint,
            token: randomToken(),
            leaseMs: LONG_MS,
            retentionMs: LONG_MS,
            ...overrides,
          }),
        });
      } finally {
        await store.close();
        await harness.cleanup?.();
      }
    });
  }

  // A case a backend cannot meet is not registered at all (a skipped test in the report reads
  // like a hidden failure); the capability flag that removed it is in the suite's name instead.
  function skipped(_name: string, _reason: string): void {}

  options.describe(
    `idemkit store contract: ${options.name}${expiresByTtl ? ' (expiresByTtl: no sweep-count case)' : ''}`,
    () => {
      defineContractCases(test, skipped, expiresByTtl);
      test('a model-based run of claim, complete, release, markUncertain, heartbeat, crash and sweep matches the model (T51)', async ({
        store,
        clock,
      }) => {
        await runStoreModel({
          name: options.name,
          store,
          clock,
          runs: options.modelRuns ?? 100,
          replay: options.modelReplay,
        });
      });
    },
  );
}
