/** The servers of `npm run bench -- adapters`. Shared by the runner and the server child. */

export const FRAMEWORKS = [
  'express',
  'express5',
  'express-glue',
  'fastify',
  'koa',
  'hono',
  'nestjs-express',
  'nestjs-fastify',
] as const;
export type Framework = (typeof FRAMEWORKS)[number];

/**
 * What runs without `--frameworks`. `express-glue` is for attribution, on request: the same app
 * with the engine called by hand instead of through the adapter, so the adapter's own share of
 * the cost shows (the way the engine-cost targets were first measured).
 */
export const DEFAULT_FRAMEWORKS: readonly Framework[] = FRAMEWORKS.filter((f) => f !== 'express-glue');

export const FRAMEWORK_LABELS: Record<Framework, string> = {
  express: 'Express 4',
  express5: 'Express 5',
  'express-glue': 'Express 4 (idemkit rows: the engine called by hand, no adapter)',
  fastify: 'Fastify 5',
  koa: 'Koa 3',
  hono: 'Hono 4 (@hono/node-server)',
  'nestjs-express': 'NestJS 12 on Express',
  'nestjs-fastify': 'NestJS 12 on Fastify',
};

export type StoreKind = 'none' | 'memory' | 'redis';

/** One server of a pair: the bare framework, or the framework with idemkit's adapter over a store. */
export interface AdapterVariant {
  framework: Framework;
  store: StoreKind;
  /** `unique`: a fresh key per request (every request executes); `replay`: one key, executed once. */
  keys: 'unique' | 'replay';
}

/** The idemkit variants measured per framework, each paired with the bare framework. */
export const MEASURED: readonly Omit<AdapterVariant, 'framework'>[] = [
  { store: 'memory', keys: 'unique' },
  { store: 'memory', keys: 'replay' },
  { store: 'redis', keys: 'unique' },
  { store: 'redis', keys: 'replay' },
];

export function variantName(v: AdapterVariant): string {
  if (v.store === 'none') return `${v.framework} bare`;
  return `${v.framework} ${v.store}${v.keys === 'replay' ? ' replay' : ''}`;
}

/** The route of the workload the npm peers were measured on (a small JSON POST, 201 JSON). */
export const CHARGES_PATH = '/charges';

/** What the server child (`adapter-server.ts`) is told to serve. */
export interface AdapterChildConfig {
  variant: AdapterVariant;
  /** The idemkit modules to serve: a compiled tree (`.js`, `compileSources()`) or sources (`.ts`). */
  lib: { dir: string; ext: '.ts' | '.js' };
  /** Memory store capacity: must exceed the keys one run sends (rate × duration). */
  maxEntries: number;
  /** Redis variants: the server and the key prefix of this run (the runner deletes its keys). */
  redis?: { url: string; prefix: string };
  /** The engine's store timeout, where the default is too short (a server under valgrind). */
  storeTimeoutMs?: number;
}

/**
 * Record retention in the bench (the default is 24 h): if a run dies before the runner deletes
 * its Redis keys, Redis expires them within minutes. It changes no per-request work.
 */
export const BENCH_RETENTION_MS = 600_000;
