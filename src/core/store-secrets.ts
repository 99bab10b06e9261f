import type { VersionedSecret } from './fingerprint.js';
import type { IdempotencyStore } from './store.js';

/**
 * The fingerprint secrets. Configured ones are used as they are; otherwise the store's own
 * secret is read once, lazily, on the first request, and a failure is retried by the next one.
 */
export class StoreSecrets {
  private readonly configured: readonly VersionedSecret[] | undefined;
  private readonly store: IdempotencyStore;
  private loading: Promise<readonly VersionedSecret[]> | undefined;
  /** The store's secret once read: later requests get it without awaiting a promise again. */
  private loaded: readonly VersionedSecret[] | undefined;

  constructor(configured: readonly VersionedSecret[] | undefined, store: IdempotencyStore) {
    this.configured = configured;
    this.store = store;
  }

  /** The secrets, newest version first; synchronous when configured or once read. */
  get(): readonly VersionedSecret[] | Promise<readonly VersionedSecret[]> {
    if (this.configured) return this.configured;
    if (this.loaded) return this.loaded;
    this.loading ??= (this.store.defaultSecret as () => Promise<string>)().then(
      (key) => {
        this.loaded = Object.freeze([{ version: 0, key }]);
        return this.loaded;
      },
      (error: unknown) => {
        this.loading = undefined;
        throw error;
      },
    );
    return this.loading;
  }
}
