/** The servers of `npm run bench -- express`. Shared by the runner and the server child. */

export type ExpressVariantName = 'bare' | 'memory' | 'memory-replay' | 'redis' | 'redis-replay';

export interface ExpressVariant {
  name: ExpressVariantName;
  /** What the table prints. */
  label: string;
  /** `none`: Express alone, no idemkit (the baseline). */
  store: 'none' | 'memory' | 'redis';
  /** `unique`: a fresh key per request (every request executes); `replay`: one key, executed once. */
  keys: 'unique' | 'replay';
}

export const EXPRESS_VARIANTS: readonly ExpressVariant[] = [
  { name: 'bare', label: 'bare Express (baseline)', store: 'none', keys: 'unique' },
  { name: 'memory', label: 'idemkit memory, unique keys', store: 'memory', keys: 'unique' },
  { name: 'memory-replay', label: 'idemkit memory, replays', store: 'memory', keys: 'replay' },
  { name: 'redis', label: 'idemkit redis, unique keys', store: 'redis', keys: 'unique' },
  { name: 'redis-replay', label: 'idemkit redis, replays', store: 'redis', keys: 'replay' },
];

/** The route of the workload the npm peers were measured on (a small JSON POST, 201 JSON). */
export const CHARGES_PATH = '/charges';

/** What the server child (`express-server.ts`) is told to serve. */
export interface ExpressChildConfig {
  variant: ExpressVariantName;
  /** The idemkit modules to serve: a compiled tree (`.js`, `compileSources()`) or sources (`.ts`). */
  lib: { dir: string; ext: '.ts' | '.js' };
  /** Memory store capacity: must exceed the keys one run sends (rate × duration). */
  maxEntries: number;
  /** Redis variants: the server and the key prefix of this run (the runner deletes its keys). */
  redis?: { url: string; prefix: string };
}

/**
 * Record retention in the bench (the default is 24 h): if a run dies before the runner deletes
 * its Redis keys, Redis expires them within minutes. It changes no per-request work.
 */
export const BENCH_RETENTION_MS = 600_000;
