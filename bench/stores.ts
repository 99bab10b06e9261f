import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createClient } from '@redis/client';
import { Redis } from 'ioredis';
import pg from 'pg';
import { migrate, postgresStore } from '../src/stores/postgres.js';
import { tableName } from '../src/stores/postgres-schema.js';
import { statements } from '../src/stores/postgres-sql.js';
import { redisStore } from '../src/stores/redis.js';
import { encodeResponse } from '../src/stores/response-codec.js';
import { sqliteStore } from '../src/stores/sqlite.js';
import type { IdempotencyStore, StoredResponse } from '../src/stores/types.js';
import { type RawSqlitePair, rawSqliteAutocommit } from './lib/raw-sqlite.js';
import { runRedisServerCpu } from './lib/redis-cpu.js';

/*
 * `npm run bench -- stores [--rounds 3] [--pg-pairs 4000] [--redis-pairs 20000] [--only postgres|redis|sqlite] [--sqlite-pairs 4000]`
 * claim + complete per second through each idemkit store, next to the raw driver sending the same
 * statements (same SQL text and prepared-statement names; for Redis, plain SET NX + SET XX) in the same
 * run. Variants are interleaved round by round; the table shows medians over rounds, the ratio to
 * the raw baseline, and p50/p99 of each operation (all rounds pooled). 50 calls in flight, pg pool of
 * 10, one Redis connection.
 */

const LANES = 50;
const RESPONSE: StoredResponse = {
  status: 201,
  headers: [['content-type', 'application/json']],
  body: Buffer.from('{"id":"ch_123","amount":1000,"currency":"eur"}'),
};

interface Pair {
  claim(key: string, token: string): Promise<unknown>;
  complete(key: string, token: string): Promise<unknown>;
}

interface Sample {
  opsPerSecond: number;
  /** This process's CPU (user + system) per claim + complete, µs. */
  cpuUsPerPair: number;
  claimMs: number[];
  completeMs: number[];
}

async function measure(pair: Pair, pairs: number, run: string): Promise<Sample> {
  const claimMs: number[] = [];
  const completeMs: number[] = [];
  let next = 0;
  async function lane(): Promise<void> {
    while (next < pairs) {
      const key = `${run}-${next++}`;
      const token = randomBytes(16).toString('hex');
      const t0 = performance.now();
      await pair.claim(key, token);
      const t1 = performance.now();
      await pair.complete(key, token);
      claimMs.push(t1 - t0);
      completeMs.push(performance.now() - t1);
    }
  }
  const started = performance.now();
  const cpu = process.cpuUsage();
  await Promise.all(Array.from({ length: LANES }, lane));
  const used = process.cpuUsage(cpu);
  return {
    opsPerSecond: pairs / ((performance.now() - started) / 1000),
    cpuUsPerPair: (used.user + used.system) / pairs,
    claimMs,
    completeMs,
  };
}

const viaStore = (store: IdempotencyStore): Pair => ({
  claim: (key, token) => store.claim({ key, fingerprint: 'fp', token, leaseMs: 30_000, retentionMs: 60_000 }),
  complete: (key, token) => store.complete({ key, token, response: RESPONSE, retentionMs: 60_000 }),
});

function rawPostgres(pool: pg.Pool, table: string): Pair {
  const sql = statements(tableName(table));
  return {
    // The last value is the claim's lock bound, as postgresStore sends it (lockTimeoutMs 200).
    claim: (key, token) => pool.query({ ...sql.claim, values: [key, 'fp', token, 30_000, 60_000, '200ms'] }),
    complete: (key, token) =>
      pool.query({ ...sql.complete, values: [key, token, encodeResponse(RESPONSE), 60_000] }),
  };
}

function rawSqlite(raw: RawSqlitePair): Pair {
  const blob = encodeResponse(RESPONSE);
  return {
    claim: async (key, token) => raw.claim(key, token, 'fp'),
    complete: async (key, token) => raw.complete(key, token, blob),
  };
}

// The least a Redis store could send: a plain SET NX PX to claim, SET XX PX to complete.
function rawRedis(send: (args: (string | Buffer)[]) => Promise<unknown>, prefix: string): Pair {
  const blob = Buffer.from(encodeResponse(RESPONSE));
  const k = (key: string) => `${prefix}{${key}}`;
  return {
    claim: (key, token) => send(['SET', k(key), token, 'NX', 'PX', '90000']),
    complete: (key) => send(['SET', k(key), blob, 'XX', 'PX', '60000']),
  };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

function median(values: number[]): number {
  return percentile(values, 50);
}

function flag(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(argv[i + 1]);
}

/** Runs the bench and prints its table; `argv` as after `npm run bench -- stores`. */
export async function run(argv: string[] = []): Promise<void> {
  const rounds = flag(argv, 'rounds', 3);
  const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : undefined;
  const groups: { name: string; pairs: number; variants: [string, Pair][]; close(): Promise<void> }[] = [];

  if (only === undefined || only === 'postgres') {
    const pool = new pg.Pool({
      connectionString: process.env.POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
      max: 10,
    });
    const table = `idemkit_bench_${randomBytes(4).toString('hex')}`;
    await migrate({ pool, table });
    groups.push({
      name: 'postgres',
      pairs: flag(argv, 'pg-pairs', 4_000),
      variants: [
        ['raw pg, same statements', rawPostgres(pool, table)],
        ['idemkit postgresStore', viaStore(postgresStore({ pool, table }))],
      ],
      async close() {
        await pool.query(`DROP TABLE IF EXISTS "${table}"`);
        await pool.end();
      },
    });
  }
  if (only === undefined || only === 'redis') {
    const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const nodeRedis = createClient({ url });
    await nodeRedis.connect();
    const ioredis = new Redis(url);
    const prefix = `idemkit-bench:${randomBytes(4).toString('hex')}:`;
    groups.push({
      name: 'redis',
      pairs: flag(argv, 'redis-pairs', 20_000),
      variants: [
        ['raw node-redis SET NX + SET XX', rawRedis((args) => nodeRedis.sendCommand(args), prefix)],
        ['idemkit redisStore (node-redis)', viaStore(redisStore({ client: nodeRedis, prefix }))],
        [
          'raw ioredis SET NX + SET XX',
          rawRedis(([c, ...rest]) => ioredis.callBuffer(String(c), rest), prefix),
        ],
        ['idemkit redisStore (ioredis)', viaStore(redisStore({ client: ioredis, prefix }))],
      ],
      async close() {
        nodeRedis.destroy();
        ioredis.disconnect();
      },
    });
  }

  if (only === undefined || only === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'idemkit-bench-stores-'));
    const raws = (['FULL', 'NORMAL'] as const).map((mode) =>
      rawSqliteAutocommit(join(dir, `raw-${mode}.db`), mode),
    );
    const stores = (['FULL', 'NORMAL'] as const).map((synchronous) =>
      sqliteStore({ path: join(dir, `store-${synchronous}.db`) }, { synchronous }),
    );
    groups.push({
      name: 'sqlite',
      pairs: flag(argv, 'sqlite-pairs', 4_000),
      // Each store line's "vs raw" is against the raw line above it (same synchronous mode).
      variants: [
        ['raw better-sqlite3 FULL, autocommit each', rawSqlite(raws[0] as RawSqlitePair)],
        ['idemkit sqliteStore FULL', viaStore(stores[0] as IdempotencyStore)],
        ['raw better-sqlite3 NORMAL, autocommit each', rawSqlite(raws[1] as RawSqlitePair)],
        ['idemkit sqliteStore NORMAL', viaStore(stores[1] as IdempotencyStore)],
      ],
      async close() {
        for (const raw of raws) raw.close();
        for (const store of stores) await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    });
  }

  const samples = new Map<string, Sample[]>();
  for (const group of groups) {
    // A warm-up round fills pg's per-connection statement caches and JIT-compiles both paths.
    for (const [name, pair] of group.variants)
      await measure(pair, Math.min(group.pairs, 2_000), `warm-${name}`);
  }
  for (let round = 0; round < rounds; round++) {
    for (const group of groups) {
      const order = round % 2 === 0 ? group.variants : [...group.variants].reverse();
      for (const [name, pair] of order) {
        const sample = await measure(pair, group.pairs, `r${round}-${randomBytes(3).toString('hex')}`);
        samples.set(name, [...(samples.get(name) ?? []), sample]);
      }
    }
  }
  for (const group of groups) await group.close();

  console.log(`\nclaim + complete, ${LANES} in flight, median of ${rounds} interleaved rounds\n`);
  console.log(
    '| variant | pairs/s | vs raw | CPU µs/pair | claim p50 ms | claim p99 ms | complete p50 ms | complete p99 ms |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const group of groups) {
    let raw = Number.NaN;
    for (const [name] of group.variants) {
      const s = samples.get(name) ?? [];
      const ops = median(s.map((x) => x.opsPerSecond));
      if (name.startsWith('raw')) raw = ops;
      const claims = s.flatMap((x) => x.claimMs);
      const completes = s.flatMap((x) => x.completeMs);
      const cells = [
        name,
        Math.round(ops).toLocaleString('en-US'),
        name.startsWith('raw') ? '1.00×' : `${(ops / raw).toFixed(2)}×`,
        median(s.map((x) => x.cpuUsPerPair)).toFixed(1),
        ...[
          percentile(claims, 50),
          percentile(claims, 99),
          percentile(completes, 50),
          percentile(completes, 99),
        ].map((v) => v.toFixed(2)),
      ];
      console.log(`| ${cells.join(' | ')} |`);
    }
  }
  // Redis server CPU per pair, on a private server: the cost that bounds one Redis core.
  if (only === undefined || only === 'redis')
    await runRedisServerCpu(flag(argv, 'redis-pairs', 20_000), rounds);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run(process.argv.slice(2));
