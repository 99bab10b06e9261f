/** The server variants of `npm run bench -- engine`. Shared by the runner and the child server. */

export type VariantName =
  | 'bare'
  | 'bare-burn'
  | 'memory'
  | 'memory-replay'
  | 'sqlite-full'
  | 'sqlite-normal'
  | 'sqlite-replay';

export interface Variant {
  name: VariantName;
  /** What the table prints. */
  label: string;
  store: 'none' | 'memory' | 'sqlite';
  synchronous?: 'FULL' | 'NORMAL';
  /** `unique`: a fresh key per request (every request executes); `replay`: one key, executed once. */
  keys: 'unique' | 'replay';
}

export const VARIANTS: readonly Variant[] = [
  { name: 'bare', label: 'bare handler (baseline)', store: 'none', keys: 'unique' },
  // Calibration, only with --burn N: the bare handler plus N µs of busy loop per request.
  { name: 'bare-burn', label: 'bare + busy loop (calibration)', store: 'none', keys: 'unique' },
  { name: 'memory', label: 'memory, unique keys', store: 'memory', keys: 'unique' },
  { name: 'memory-replay', label: 'memory, replays', store: 'memory', keys: 'replay' },
  {
    name: 'sqlite-full',
    label: 'sqlite FULL, unique keys',
    store: 'sqlite',
    synchronous: 'FULL',
    keys: 'unique',
  },
  {
    name: 'sqlite-normal',
    label: 'sqlite NORMAL, unique keys',
    store: 'sqlite',
    synchronous: 'NORMAL',
    keys: 'unique',
  },
  {
    name: 'sqlite-replay',
    label: 'sqlite FULL, replays',
    store: 'sqlite',
    synchronous: 'FULL',
    keys: 'replay',
  },
];

export const PATH = '/orders';

/** The replay variants' one key and body: the fingerprint of every replay matches the first run. */
export const REPLAY_KEY = '5b0e7c1a-9d3f-4e8b-a2c6-000000000000';

/** Every load request authenticates: keyed requests without a principal get 401 by default. */
export const BENCH_AUTH = 'Bearer bench-user';

/**
 * An 88-byte JSON order. `seq` goes into a fixed-width field, so every request has its own body
 * (and its own key, from the same number) at the same length.
 */
export function orderBody(seq: number): string {
  return `{"amount":4200,"currency":"eur","customer":"cus_4f9a2","ref":"ord-${String(seq).padStart(12, '0')}","qty":1}`;
}

export const BODY_BYTES = Buffer.byteLength(orderBody(0));

/** Messages between the runner and a bench child (over the IPC channel); every bench child speaks them. */
export type ToChild = { type: 'cpu' } | { type: 'stop' };
export type FromChild =
  | { type: 'ready'; url: string }
  | { type: 'unavailable'; reason: string }
  /**
   * Process CPU (all threads: V8's GC and compiler helpers too), and from /proc/self/schedstat
   * the main thread's own CPU and run-queue wait (-1 without it). `served`: requests the child
   * answered so far, from children that count them (the gateway bench's upstream).
   */
  | {
      type: 'cpu';
      userUs: number;
      systemUs: number;
      mainNs: number;
      waitNs: number;
      rss: number;
      served?: number;
    }
  | { type: 'raw'; result: RawSqliteResult }
  | { type: 'error'; message: string };

export interface RawSqliteResult {
  /** µs for one claim statement plus one completion statement, each its own autocommit. */
  full: { usPerPair: number; pairs: number };
  normal: { usPerPair: number; pairs: number };
  /** NORMAL again, with 8 MiB of memory touched between pairs (caches cold, as in a busy server). */
  normalCold: { usPerPair: number; pairs: number };
}
