/**
 * `npm run bench -- rss [--keys 1000000] [--every 100000] [--retention 1000] [--sweep 100]
 *   [--concurrency 50] [--max-entries 100000]`
 *
 * 1,000,000 unique keys through the memory-store engine in this process (`begin()` → `commit()`,
 * no HTTP) with a short retention and a fast sweeper. RSS is sampled every 100,000 keys, before
 * and after a forced GC: with records expiring and swept, it must stay flat. The heap after the
 * GC is what the process retains; RSS before it also holds garbage not yet collected.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createIdempotency } from '../src/core/engine.js';
import type { EngineResponse } from '../src/core/response.js';
import { memoryStore } from '../src/stores/memory.js';
import type { IdempotencyStore } from '../src/stores/types.js';
import { fmt, printTable } from './lib/table.js';
import { orderBody } from './lib/variants.js';

/** Flat: the last sample's RSS (after a forced GC) at most this much above the first one's. */
const FLAT_GROWTH = 0.1;

export async function run(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      keys: { type: 'string', default: '1000000' },
      every: { type: 'string', default: '100000' },
      retention: { type: 'string', default: '1000' },
      sweep: { type: 'string', default: '100' },
      concurrency: { type: 'string', default: '50' },
      'max-entries': { type: 'string', default: '100000' },
    },
    strict: true,
  });
  const keys = bounded('keys', values.keys, 1_000, 10_000_000);
  const every = bounded('every', values.every, 100, keys);
  const retentionMs = bounded('retention', values.retention, 1, 3_600_000);
  const sweepIntervalMs = bounded('sweep', values.sweep, 1, 60_000);
  const concurrency = bounded('concurrency', values.concurrency, 1, 10_000);
  const maxEntries = bounded('max-entries', values['max-entries'], 1, 10_000_000);
  const gc = exposeGc();

  // Counts what the engine's sweeper removes; claims' own lazy sweep is not visible from here.
  let swept = 0;
  const memory = memoryStore({
    maxEntries,
    maxEntriesPerPrincipal: maxEntries,
    maxBytes: 4 * 1024 ** 3,
    onWarning: () => {},
  });
  const store: IdempotencyStore = {
    ...memory,
    name: memory.name,
    sweep: async (limit) => {
      const n = await memory.sweep(limit);
      swept += n;
      return n;
    },
  };
  const idem = createIdempotency({ store, retentionMs, sweepIntervalMs, onWarning: () => {} });
  const response: EngineResponse = {
    status: 201,
    headers: [['content-type', 'application/json']],
    body: Buffer.from('{"id":"ord_123456","amount":4200,"currency":"eur","status":"created"}'),
  };
  const outcomes = new Map<string, number>();
  const count = (what: string) => outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
  const prefix = `rss-${process.pid}-`;

  async function one(i: number): Promise<void> {
    const decision = await idem.begin({
      method: 'POST',
      path: '/orders',
      headers: {
        'content-type': 'application/json',
        authorization: 'Bearer rss-user',
        'idempotency-key': `${prefix}${i}`,
      },
      body: Buffer.from(orderBody(i)),
    });
    if (decision.kind === 'execute') {
      const result = await decision.commit(response);
      count(result.durable ? 'executed' : 'executed, not durable');
    } else {
      count(decision.kind === 'reject' ? `rejected: ${decision.code}` : decision.kind);
    }
  }

  console.log(
    `memory store RSS · node ${process.version} · ${fmt(keys)} unique keys, retention ${retentionMs} ms, sweeper every ${sweepIntervalMs} ms, ${concurrency} in flight, maxEntries ${fmt(maxEntries)}`,
  );
  const rows: string[][] = [];
  const samples: { rss: number; heap: number }[] = [];
  const started = performance.now();
  let last = started;
  let next = 0;
  while (next < keys) {
    // One slice at a time, then back to the event loop so the sweeper's timer can fire, as it
    // would between requests in a server.
    const end = Math.min(keys, next + every);
    while (next < end) {
      const batch = Math.min(1_000, end - next);
      const lanes = Math.min(concurrency, batch);
      let i = next;
      await Promise.all(
        Array.from({ length: lanes }, async () => {
          while (i < next + batch) await one(i++);
        }),
      );
      next += batch;
      await yieldToLoop();
    }
    const now = performance.now();
    const rss = process.memoryUsage.rss();
    gc?.();
    const after = process.memoryUsage();
    samples.push({ rss: after.rss, heap: after.heapUsed });
    rows.push([
      fmt(next),
      fmt(rss / 2 ** 20, 1),
      fmt(after.rss / 2 ** 20, 1),
      fmt(after.heapUsed / 2 ** 20, 1),
      fmt(swept),
      fmt((every / (now - last)) * 1_000),
    ]);
    last = now;
  }
  await idem.close();
  await memory.close();

  console.log('');
  const tag = gc ? 'after GC' : '(no GC available)';
  printTable(['keys', 'RSS MiB', `RSS ${tag} MiB`, `heap ${tag} MiB`, 'swept', 'keys/s'], rows);
  console.log(
    `\noutcomes: ${[...outcomes].map(([k, n]) => `${k} ${fmt(n)}`).join(', ')} · ${fmt((performance.now() - started) / 1_000, 1)} s`,
  );
  const first = samples[0];
  const final = samples.at(-1);
  if (first && final && samples.length > 1) {
    const growth = (final.rss - first.rss) / first.rss;
    const verdict = growth <= FLAT_GROWTH ? 'PASS' : 'MISS';
    console.log(
      `${verdict}  RSS after GC ${fmt(first.rss / 2 ** 20, 1)} MiB at ${fmt(every)} keys → ${fmt(final.rss / 2 ** 20, 1)} MiB at ${fmt(keys)} keys (${growth >= 0 ? '+' : ''}${fmt(100 * growth, 1)}%; flat means ≤ +${100 * FLAT_GROWTH}%); heap ${fmt(first.heap / 2 ** 20, 1)} → ${fmt(final.heap / 2 ** 20, 1)} MiB`,
    );
  }
}

/** `global.gc` without restarting node under --expose-gc (the flag is read when a context is made). */
function exposeGc(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

function bounded(name: string, text: string | undefined, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`--${name}: expected an integer in [${min}, ${max}], got ${text}`);
  }
  return value;
}
