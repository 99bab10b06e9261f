/**
 * `npm run bench -- adapters [--frameworks express,fastify,…] [--stores memory,redis]
 *   [--rounds 3] [--warmup 2] [--duration 5] [--connections 50] [--profile] [--src <dir>]`
 * (README.md lists every flag)
 *
 * Every framework adapter paired with its bare framework in the same run: the workload the npm
 * peers were measured on (POST /charges, a small JSON body, 201 JSON with Location, a custom
 * header and Set-Cookie; the bare app reads and parses the body too), unique keys and replays,
 * memory and Redis stores. Each idemkit run sits next to a bare run of the same framework (the
 * pair's order alternates between rounds); ratios are taken within a pair, then the median over
 * rounds. The server runs in a fresh child pinned to one core, autocannon in this process on the
 * other. Not a test: CI never runs it, nothing asserts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  type AdapterChildConfig,
  type AdapterVariant,
  CHARGES_PATH,
  DEFAULT_FRAMEWORKS,
  FRAMEWORK_LABELS,
  FRAMEWORKS,
  type Framework,
  MEASURED,
  variantName,
} from './lib/adapter-variants.js';
import { compileSources } from './lib/build.js';
import { type Pinning, pinCores, ServerChild } from './lib/child.js';
import {
  bounded,
  describeOutcome,
  leastContended,
  measureRun,
  type Outcome,
  type RoundResult,
  replayCheck,
} from './lib/measure.js';
import { summarizeProfiles } from './lib/profile.js';
import { connectRedis, deleteKeys, loopbackRedis, type RedisClient, sampleRedis } from './lib/redis-stats.js';
import { fmt, median, printTable } from './lib/table.js';
import { BODY_BYTES, REPLAY_KEY } from './lib/variants.js';

const SERVER = fileURLToPath(new URL('./lib/adapter-server.ts', import.meta.url));

/** Reported PASS/MISS, never asserted. Express has the engine-cost targets; the others the adapter ones. */
function targetsOf(framework: Framework) {
  if (framework === 'express' || framework === 'express5' || framework === 'express-glue') {
    return { memory: { ratio: 0.92, extraCpuUs: 10 }, redis: { ratio: 0.85, extraCpuUs: 20 } };
  }
  return { memory: { ratio: undefined, extraCpuUs: 15 }, redis: { ratio: undefined, extraCpuUs: 25 } };
}
/** Redis server CPU per executed request (net of the paired bare run's background), µs. */
const REDIS_SERVER_CPU_US = 10;
/** Replays never slower than the bare handler executing. */
const REPLAY_RATIO = 1;
const SETTLE_MS = 300;

interface Run {
  outcome: Outcome;
  redis?: { cpuUs: number; calls: number } | undefined;
}

interface Pair {
  bare: Run;
  mine: Run;
}

interface Shape {
  warmupS: number;
  durationS: number;
  connections: number;
  maxEntries: number;
  lib: AdapterChildConfig['lib'];
  redis: { url: string; prefix: string; client: RedisClient } | undefined;
}

export async function run(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      frameworks: { type: 'string' },
      stores: { type: 'string', default: 'memory,redis' },
      rounds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '2' },
      duration: { type: 'string', default: '5' },
      connections: { type: 'string', default: '50' },
      retries: { type: 'string', default: '0' },
      'max-entries': { type: 'string', default: '2000000' },
      redis: { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
      profile: { type: 'boolean', default: false },
      src: { type: 'string' },
      tsx: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const rounds = bounded('rounds', values.rounds, 1, 20);
  const retries = bounded('retries', values.retries, 0, 5);
  const frameworks = listOf('frameworks', values.frameworks, FRAMEWORKS, DEFAULT_FRAMEWORKS);
  const stores = listOf('stores', values.stores, ['memory', 'redis'] as const);
  const srcDir = resolve(values.src ?? join(import.meta.dirname, '..', 'src'));
  const redisUrl = loopbackRedis(values.redis);

  process.once('SIGINT', () => process.exit(130));
  const pinning = pinCores();
  console.log(
    `idemkit adapters bench · node ${process.version} · ${cpus()[0]?.model ?? '?'} × ${cpus().length} · ${pinning.note}`,
  );
  const shapeBase = {
    warmupS: bounded('warmup', values.warmup, 0, 60),
    durationS: bounded('duration', values.duration, 1, 120),
    connections: bounded('connections', values.connections, 1, 1_000),
    maxEntries: bounded('max-entries', values['max-entries'], 1_000, 10_000_000),
  };
  console.log(
    `POST ${CHARGES_PATH}, ${BODY_BYTES}-byte JSON body, ${shapeBase.connections} connections, ${shapeBase.warmupS} s warm-up + ${shapeBase.durationS} s measured, ${rounds} rounds of pairs (the bare framework next to each variant), medians`,
  );
  let lib: AdapterChildConfig['lib'] = { dir: srcDir, ext: '.ts' };
  if (!values.tsx) {
    const built = compileSources(srcDir);
    process.once('exit', built.remove);
    lib = { dir: built.dir, ext: '.js' };
  }
  console.log(`serving ${srcDir}${values.tsx ? ' through tsx' : ', compiled by tsc'}`);

  const redisPrefix = `idemkit-bench-${randomBytes(6).toString('hex')}:`;
  const redis = stores.includes('redis') ? await connectRedis(redisUrl) : undefined;
  if (redis && !redis.ok) console.log(`redis variants skipped: ${redis.reason}`);
  const redisClient = redis?.ok ? redis.client : undefined;
  const shape: Shape = {
    ...shapeBase,
    lib,
    redis: redisClient ? { url: redisUrl, prefix: redisPrefix, client: redisClient } : undefined,
  };

  const measured = MEASURED.filter((m) => stores.includes(m.store as 'memory' | 'redis'));
  const results = new Map<string, Pair[]>();
  const missed: AdapterVariant[] = [];
  try {
    for (const framework of frameworks) {
      console.log(`\n${FRAMEWORK_LABELS[framework]}`);
      const bare: AdapterVariant = { framework, store: 'none', keys: 'unique' };
      const variants = measured.map((m) => ({ framework, ...m }));
      for (let round = 0; round < rounds; round++) {
        const order = variants.map((_, i) => variants[(i + round) % variants.length] as AdapterVariant);
        for (const variant of order) {
          const one = (v: AdapterVariant): Promise<Run> =>
            v.store === 'redis' && !shape.redis
              ? Promise.resolve({ outcome: { ok: false, reason: 'no Redis' } })
              : measureLogged(v, shape, pinning, retries, `round ${round + 1}/${rounds}`);
          const first = await one(round % 2 === 0 ? bare : variant);
          const second = await one(round % 2 === 0 ? variant : bare);
          const pair = round % 2 === 0 ? { bare: first, mine: second } : { bare: second, mine: first };
          const name = variantName(variant);
          results.set(name, [...(results.get(name) ?? []), pair]);
        }
      }
      missed.push(...report(framework, variants, results));
    }
    if (values.profile) await profileMisses(missed, shape, pinning);
  } finally {
    if (redisClient) {
      await deleteKeys(redisClient, redisPrefix);
      await redisClient.close();
    }
  }
}

function listOf<T extends string>(
  flag: string,
  text: string | undefined,
  all: readonly T[],
  byDefault: readonly T[] = all,
): T[] {
  if (text === undefined) return [...byDefault];
  const picked = text.split(',').map((s) => s.trim());
  for (const name of picked) {
    if (!all.includes(name as T)) throw new Error(`--${flag}: unknown ${name} (one of ${all.join(', ')})`);
  }
  return picked as T[];
}

async function measureLogged(
  variant: AdapterVariant,
  shape: Shape,
  pinning: Pinning,
  retries: number,
  label: string,
): Promise<Run> {
  const runs = new Map<Outcome, Run>();
  const outcome = await leastContended(
    retries,
    async () => {
      const run = await measure(variant, shape, pinning);
      runs.set(run.outcome, run);
      return run.outcome;
    },
    (next, note) =>
      console.log(`  ${label}  ${variantName(variant).padEnd(24)} ${describeOutcome(next, fmt)}${note}`),
  );
  return runs.get(outcome) ?? { outcome };
}

/** One run: a fresh server child (fresh store), the replay check, warm-up, measured run. */
async function measure(
  variant: AdapterVariant,
  shape: Shape,
  pinning: Pinning,
  profile?: { dir: string; name: string },
): Promise<Run> {
  const redis = variant.store === 'redis' ? shape.redis : undefined;
  const config: AdapterChildConfig = {
    variant,
    lib: shape.lib,
    maxEntries: shape.maxEntries,
    ...(redis ? { redis: { url: redis.url, prefix: redis.prefix } } : {}),
  };
  const child = ServerChild.start(SERVER, config, pinning.server, profile);
  try {
    const ready = await child.next(['ready'], 30_000);
    if (ready.type === 'unavailable') return { outcome: { ok: false, reason: ready.reason } };
    await replayCheck(ready.url, variantName(variant), {
      idempotent: variant.store !== 'none',
      key: variant.keys === 'replay' ? REPLAY_KEY : undefined,
      path: CHARGES_PATH,
    });
    const samples: { cpuUs: number; calls: number }[] = [];
    const client = shape.redis?.client;
    const result = await measureRun(child, {
      url: ready.url,
      path: CHARGES_PATH,
      connections: shape.connections,
      keys: variant.keys,
      warmupS: shape.warmupS,
      durationS: shape.durationS,
      settleMs: SETTLE_MS,
      ...(client
        ? {
            outsideCpuUs: async () => {
              const sample = await sampleRedis(client);
              samples.push(sample);
              return sample.cpuUs;
            },
          }
        : {}),
    });
    const [before, after] = samples;
    return {
      outcome: { ok: true, result },
      redis:
        before && after
          ? { cpuUs: after.cpuUs - before.cpuUs, calls: after.calls - before.calls }
          : undefined,
    };
  } finally {
    await child.stop();
    if (redis) await deleteKeys(redis.client, redis.prefix);
  }
}

/** The run's Redis CPU per response net of the paired bare run's Redis background. */
function netRedisUs(pair: Pair): number {
  const m = pair.mine;
  const b = pair.bare;
  if (!m.outcome.ok || !b.outcome.ok || !m.redis || !b.redis) return Number.NaN;
  const bareSeconds = b.outcome.result.responses / b.outcome.result.rps;
  const mineSeconds = m.outcome.result.responses / m.outcome.result.rps;
  const background = b.redis.cpuUs / bareSeconds;
  return (m.redis.cpuUs - background * mineSeconds) / m.outcome.result.responses;
}

/** Prints one framework's table and targets; returns the variants that missed a target. */
function report(framework: Framework, variants: readonly AdapterVariant[], results: Map<string, Pair[]>) {
  const result = (run: Run): RoundResult | undefined => (run.outcome.ok ? run.outcome.result : undefined);
  const pairsOf = (v: AdapterVariant) => results.get(variantName(v)) ?? [];
  const perPair = (v: AdapterVariant, f: (r: RoundResult, b: RoundResult) => number): number[] =>
    pairsOf(v).map((p) => {
      const r = result(p.mine);
      const b = result(p.bare);
      return r && b ? f(r, b) : Number.NaN;
    });
  const own = (runs: readonly Run[], f: (r: RoundResult) => number) =>
    median(runs.map((run) => (run.outcome.ok ? f(run.outcome.result) : Number.NaN)));

  const rows: string[][] = [];
  const row = (label: string, runs: Run[], v?: AdapterVariant) => {
    if (!runs.some((r) => r.outcome.ok)) {
      const why = runs.find((r) => !r.outcome.ok)?.outcome;
      rows.push([label, why && !why.ok ? `skipped: ${why.reason}` : '–']);
      return;
    }
    const failures = runs.reduce((n, r) => n + (result(r)?.non2xx ?? 0) + (result(r)?.errors ?? 0), 0);
    const vs = (f: (r: RoundResult, b: RoundResult) => number, digits: number) =>
      v ? fmt(median(perPair(v, f)), digits) : '';
    rows.push([
      label,
      fmt(own(runs, (r) => r.rps)),
      v ? vs((r, b) => r.rps / b.rps, 2) : '1.00',
      fmt(
        own(runs, (r) => r.p99Ms),
        2,
      ),
      v ? vs((r, b) => r.p99Ms / b.p99Ms, 2) : '1.00',
      fmt(
        own(runs, (r) => r.cpuUsPerReq),
        1,
      ),
      vs((r, b) => r.cpuUsPerReq - b.cpuUsPerReq, 1),
      v?.store === 'redis' ? fmt(median(pairsOf(v).map(netRedisUs)), 1) : '',
      String(failures),
    ]);
  };
  row(
    `bare ${FRAMEWORK_LABELS[framework]}`,
    variants.flatMap((v) => pairsOf(v).map((p) => p.bare)),
  );
  for (const v of variants)
    row(
      variantName(v),
      pairsOf(v).map((p) => p.mine),
      v,
    );
  printTable(
    [
      'variant',
      'req/s',
      '× bare',
      'p99 ms',
      'p99 × bare',
      'CPU µs/req',
      '+CPU µs/req',
      'redis net µs/req',
      'non-2xx+err',
    ],
    rows,
  );

  const missed: AdapterVariant[] = [];
  const line = (
    v: AdapterVariant,
    values: number[],
    pass: (x: number) => boolean,
    text: (x: number) => string,
  ) => {
    const value = median(values);
    const verdict = Number.isFinite(value) ? (pass(value) ? 'PASS' : 'MISS') : 'n/a ';
    if (verdict === 'MISS' && !missed.includes(v)) missed.push(v);
    console.log(
      `  ${verdict}  ${variantName(v)}: ${text(value)} (pairs ${values.map((x) => fmt(x, 2)).join(', ')})`,
    );
  };
  const targets = targetsOf(framework);
  for (const v of variants) {
    if (v.store === 'none') continue;
    if (v.keys === 'replay') {
      line(
        v,
        perPair(v, (r, b) => r.rps / b.rps),
        (x) => x >= REPLAY_RATIO,
        (x) => `replays req/s ÷ bare executing = ${fmt(x, 2)} (target ≥ ${fmt(REPLAY_RATIO, 2)})`,
      );
      continue;
    }
    const target = targets[v.store];
    if (target.ratio !== undefined) {
      const ratio = target.ratio;
      line(
        v,
        perPair(v, (r, b) => r.rps / b.rps),
        (x) => x >= ratio,
        (x) => `unique keys req/s ÷ bare = ${fmt(x, 2)} (target ≥ ${ratio})`,
      );
    }
    if (v.store === 'redis') {
      line(
        v,
        pairsOf(v).map(netRedisUs),
        (x) => x <= REDIS_SERVER_CPU_US,
        (x) =>
          `Redis server CPU per executed request ${fmt(x, 1)} µs net of background (target ≤ ${REDIS_SERVER_CPU_US} µs)`,
      );
    }
    line(
      v,
      perPair(v, (r, b) => r.cpuUsPerReq - b.cpuUsPerReq),
      (x) => x <= target.extraCpuUs,
      (x) =>
        `extra server CPU per executed request ${fmt(x, 1)} µs (target ≤ ${target.extraCpuUs} µs${v.store === 'redis' ? ', Redis client included' : ''})`,
    );
  }
  return missed;
}

/** `--profile`: one more run of each variant that missed, and of its bare framework, under --cpu-prof. */
async function profileMisses(
  missed: readonly AdapterVariant[],
  shape: Shape,
  pinning: Pinning,
): Promise<void> {
  if (missed.length === 0) {
    console.log('\n--profile: every target passed, nothing to profile');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'idemkit-bench-prof-'));
  const names: { variant: AdapterVariant; file: string }[] = [];
  for (const framework of new Set(missed.map((v) => v.framework))) {
    names.push({ variant: { framework, store: 'none', keys: 'unique' }, file: `${framework}-bare` });
  }
  for (const v of missed) names.push({ variant: v, file: variantName(v).replaceAll(' ', '-') });
  for (const { variant, file } of names) {
    const run = await measure(variant, shape, pinning, { dir, name: file });
    console.log(`  profiled     ${variantName(variant).padEnd(24)} ${describeOutcome(run.outcome, fmt)}`);
  }
  for (const { file } of names) {
    console.log(`\nserver profile, ${file} (one warm-up and measured run, under --cpu-prof):`);
    for (const text of summarizeProfiles(dir, `${file}.`)) console.log(text);
  }
  console.log(`\nprofiles: ${dir}`);
}
