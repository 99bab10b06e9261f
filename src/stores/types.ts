/**
 * The store contract lives in core (`src/core/store.ts`): the engine defines the port and the
 * stores implement it, so stores depend on core and never the reverse. Re-exported here so
 * existing imports of this path keep working.
 */
export * from '../core/store.js';
