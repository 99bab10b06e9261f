/** The proxies of `npm run bench -- gateway`. Shared by the runner and the proxy child. */

export type GatewayVariantName =
  | 'bare'
  | 'bare-buffered'
  | 'memory'
  | 'memory-replay'
  | 'sqlite-full'
  | 'sqlite-normal'
  | 'sqlite-replay'
  | 'redis'
  | 'redis-replay';

export interface GatewayVariant {
  name: GatewayVariantName;
  /** What the table prints. */
  label: string;
  /** `none`: a bare undici proxy, no idemkit. */
  store: 'none' | 'memory' | 'sqlite' | 'redis';
  /** Runs only when named in `--only`. */
  optIn?: boolean;
  synchronous?: 'FULL' | 'NORMAL';
  /** `unique`: a fresh key per request (every request executes); `replay`: one key, executed once. */
  keys: 'unique' | 'replay';
}

export const GATEWAY_VARIANTS: readonly GatewayVariant[] = [
  { name: 'bare', label: 'bare undici proxy (baseline)', store: 'none', keys: 'unique' },
  // Attribution, only with --only bare-buffered: the bare proxy, but buffering both bodies the
  // way the gateway's covered path must (it stores the answer), still without idemkit.
  {
    name: 'bare-buffered',
    label: 'bare proxy, bodies buffered',
    store: 'none',
    keys: 'unique',
    optIn: true,
  },
  { name: 'memory', label: 'gateway memory, unique keys', store: 'memory', keys: 'unique' },
  { name: 'memory-replay', label: 'gateway memory, replays', store: 'memory', keys: 'replay' },
  {
    name: 'sqlite-full',
    label: 'gateway sqlite FULL, unique keys',
    store: 'sqlite',
    synchronous: 'FULL',
    keys: 'unique',
  },
  {
    name: 'sqlite-normal',
    label: 'gateway sqlite NORMAL, unique keys',
    store: 'sqlite',
    synchronous: 'NORMAL',
    keys: 'unique',
  },
  {
    name: 'sqlite-replay',
    label: 'gateway sqlite FULL, replays',
    store: 'sqlite',
    synchronous: 'FULL',
    keys: 'replay',
  },
  { name: 'redis', label: 'gateway redis, unique keys', store: 'redis', keys: 'unique' },
  { name: 'redis-replay', label: 'gateway redis, replays', store: 'redis', keys: 'replay' },
];

/** What the proxy child (`gateway-server.ts`) is told to serve. */
export interface GatewayChildConfig {
  variant: GatewayVariantName;
  /** The idemkit modules to serve: a compiled tree (`.js`, `compileSources()`) or sources (`.ts`). */
  lib: { dir: string; ext: '.ts' | '.js' };
  /** The upstream child's `http://127.0.0.1:port`. */
  upstream: string;
  /** Memory store capacity: must exceed the keys one run sends (rate × duration). */
  maxEntries: number;
  /** Redis variants: the server and the key prefix of this run (the runner deletes its keys). */
  redis?: { url: string; prefix: string };
  /** The gateway's store timeout, when not its default (the instructions bench runs under valgrind). */
  storeTimeoutMs?: number;
}

/**
 * The gateway's record retention in the bench (the default is 24 h): if a run dies before the
 * runner deletes its Redis keys, Redis expires them within minutes. It changes no per-request work.
 */
export const BENCH_RETENTION_MS = 600_000;
