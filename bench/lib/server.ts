/**
 * The server under test, run as a child process of `bench/engine.ts` (pinned to its own core):
 * `node --import tsx bench/lib/server.ts '<json ChildConfig>'`. Serves one variant over
 * `serveFetch` on 127.0.0.1, answers CPU probes over IPC, exits on `stop` (or when the runner
 * goes away). With `raw` it times the raw SQLite statements instead and reports them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { IdempotencyStore } from '../../src/stores/types.js';
import { childSide } from './child-side.js';
import { timeRawStatements } from './raw-sqlite.js';
import { PATH, VARIANTS, type Variant } from './variants.js';

export interface ChildConfig {
  variant?: Variant['name'];
  /**
   * The idemkit modules to serve: `src/` through tsx by default, or a compiled tree (`.js`) from
   * `compileSources()`, or another tree for an A/B of a patch.
   */
  lib?: { dir: string; ext: '.ts' | '.js' };
  raw?: { maxPairs: number; maxMs: number };
  /** Memory store capacity: must exceed the keys one run sends (rate × duration). */
  maxEntries: number;
  /** `bare-burn`: µs of busy loop the handler adds per request. */
  burnUs?: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
const { send, cleanups, fail } = childSide();
const lib = config.lib ?? { dir: join(import.meta.dirname, '../../src'), ext: '.ts' };
const libRoot = pathToFileURL(`${lib.dir}/`);
const load = <T>(module: string): Promise<T> => import(new URL(module + lib.ext, libRoot).href) as Promise<T>;

async function main(): Promise<void> {
  if (config.raw) {
    send({ type: 'raw', result: timeRawStatements(config.raw) });
    return;
  }
  const variant = VARIANTS.find((v) => v.name === config.variant);
  if (!variant) throw new Error(`unknown variant ${config.variant}`);
  const [{ withIdempotency }, { createIdempotency }, { memoryStore }, { serveFetch }] = await Promise.all([
    load<typeof import('../../src/adapters/fetch.js')>('adapters/fetch'),
    load<typeof import('../../src/core/engine.js')>('core/engine'),
    load<typeof import('../../src/stores/memory.js')>('stores/memory'),
    load<typeof import('../../src/testing/serve-fetch.js')>('testing/serve-fetch'),
  ]);

  // The baseline: read and parse the JSON body, answer 201 JSON. Every variant runs it.
  let created = 0;
  const handler = async (request: Request): Promise<Response> => {
    const order = (await request.json()) as { amount: number; currency: string; ref: string };
    created++;
    return Response.json(
      {
        id: `ord_${created}`,
        ref: order.ref,
        amount: order.amount,
        currency: order.currency,
        status: 'created',
      },
      { status: 201, headers: { location: `${PATH}/ord_${created}` } },
    );
  };

  let served: (request: Request) => Promise<Response>;
  if (variant.name === 'bare-burn') {
    const burnMs = (config.burnUs ?? 0) / 1_000;
    served = async (request) => {
      const until = performance.now() + burnMs;
      while (performance.now() < until) {
        // A known extra cost per request: how much does the whole server slow down for it?
      }
      return handler(request);
    };
  } else if (variant.store === 'none') {
    served = async (request) => handler(request);
  } else {
    const store =
      variant.store === 'memory'
        ? memoryStore({
            maxEntries: config.maxEntries,
            maxEntriesPerPrincipal: config.maxEntries,
            // The bench measures cost, not the store's limits: one principal, every record kept.
            maxBytes: 4 * 1024 ** 3,
            onWarning: () => {},
          })
        : await sqliteBenchStore(variant);
    if (!store) return;
    const idem = createIdempotency({ store, onWarning: () => {} });
    cleanups.push(
      () => idem.close(),
      () => store.close(),
    );
    served = withIdempotency(handler, idem);
  }
  const server = await serveFetch(served);
  cleanups.unshift(() => server.close());
  send({ type: 'ready', url: server.url });
}

/** A fresh SQLite file per run, in a temp directory removed on exit. */
async function sqliteBenchStore(variant: Variant): Promise<IdempotencyStore | undefined> {
  let sqliteStore: typeof import('../../src/stores/sqlite.js')['sqliteStore'];
  try {
    ({ sqliteStore } = await load<typeof import('../../src/stores/sqlite.js')>('stores/sqlite'));
  } catch (error) {
    send({ type: 'unavailable', reason: `the SQLite store does not load (${(error as Error).message})` });
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'idemkit-bench-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return sqliteStore({ path: join(dir, 'bench.db') }, { synchronous: variant.synchronous ?? 'FULL' });
}

main().catch(fail);
