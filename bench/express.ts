/**
 * `npm run bench -- express [--rounds 3] [--warmup 2] [--duration 6] [--connections 50]
 *   [--only memory,redis] [--profile] [--src <dir>]` (README.md lists every flag)
 *
 * The workload the npm peers were measured on — POST /charges with a small JSON body, 201 JSON
 * with Location, a custom header and Set-Cookie — on Express 4, bare and with the idemkit engine
 * glued in by hand (`begin()` / `commit()`), over the memory and the Redis store, unique keys and
 * replays. Each idemkit run is paired with a bare Express run right next to it (the pair's order
 * alternates between rounds); ratios are taken within a pair, then the median over rounds. The
 * server runs in a fresh child pinned to one core, autocannon in this process on the other.
 * Not a test: CI never runs it, nothing asserts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compileSources } from './lib/build.js';
import { type Pinning, pinCores, ServerChild } from './lib/child.js';
import {
  connectRedis,
  deleteKeys,
  loopbackRedis,
  type RedisClient,
  type RedisSample,
  sampleRedis,
} from './lib/express-redis.js';
import {
  CHARGES_PATH,
  EXPRESS_VARIANTS,
  type ExpressChildConfig,
  type ExpressVariant,
  type ExpressVariantName,
} from './lib/express-variants.js';
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
import { fmt, median, printTable } from './lib/table.js';
import { BODY_BYTES, REPLAY_KEY } from './lib/variants.js';

const SERVER = fileURLToPath(new URL('./lib/express-server.ts', import.meta.url));

/** Reported PASS/MISS, never asserted. */
const TARGETS = {
  memory: { ratio: 0.92, extraCpuUs: 10 },
  redis: { ratio: 0.85, extraCpuUs: 20 },
  replayRatio: 1,
  redisServerCpuUs: 10,
};

/** Between warm-up and measured run: the warm-up's last requests finish first. */
const SETTLE_MS = 300;

/** One measured run, with the Redis server's counters over it (when there is a Redis). */
interface Run {
  outcome: Outcome;
  redis?: { cpuUs: number; calls: number } | undefined;
}

/** An idemkit run and the bare Express run right next to it. */
interface Pair {
  round: number;
  bare: Run;
  mine: Run;
}

interface Shape {
  warmupS: number;
  durationS: number;
  connections: number;
  maxEntries: number;
  lib: ExpressChildConfig['lib'];
  redis: { url: string; prefix: string; client: RedisClient } | undefined;
}

export async function run(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      rounds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '2' },
      duration: { type: 'string', default: '6' },
      connections: { type: 'string', default: '50' },
      only: { type: 'string' },
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
  const warmupS = bounded('warmup', values.warmup, 0, 60);
  const durationS = bounded('duration', values.duration, 1, 120);
  const connections = bounded('connections', values.connections, 1, 1_000);
  const retries = bounded('retries', values.retries, 0, 5);
  const maxEntries = bounded('max-entries', values['max-entries'], 1_000, 10_000_000);
  const redisUrl = loopbackRedis(values.redis);
  const srcDir = resolve(values.src ?? join(import.meta.dirname, '..', 'src'));
  const only = values.only?.split(',').map((s) => s.trim());
  for (const name of only ?? []) {
    if (!EXPRESS_VARIANTS.some((v) => v.name === name)) throw new Error(`--only: unknown variant ${name}`);
  }
  const variants = EXPRESS_VARIANTS.filter((v) => v.name !== 'bare' && (!only || only.includes(v.name)));
  const bare = EXPRESS_VARIANTS[0] as ExpressVariant;

  // Ctrl-C: exit normally, so the compiled tree and the server children are cleaned up.
  process.once('SIGINT', () => process.exit(130));
  const pinning = pinCores();
  console.log(
    `idemkit Express bench · node ${process.version} · express 4 · ${cpus()[0]?.model ?? '?'} × ${cpus().length} · ${pinning.note}`,
  );
  console.log(
    `POST ${CHARGES_PATH}, ${BODY_BYTES}-byte JSON body, ${connections} connections, ${warmupS} s warm-up + ${durationS} s measured, ${rounds} rounds of pairs (bare Express next to each variant), medians`,
  );
  let lib: ExpressChildConfig['lib'] = { dir: srcDir, ext: '.ts' };
  if (!values.tsx) {
    const built = compileSources(srcDir);
    process.once('exit', built.remove);
    lib = { dir: built.dir, ext: '.js' };
  }
  console.log(`serving ${srcDir}${values.tsx ? ' through tsx' : ', compiled by tsc'}`);

  // Redis: this process's own client reads the server's counters and deletes the run's keys.
  const redisPrefix = `idemkit-bench-${randomBytes(6).toString('hex')}:`;
  const redis = await connectRedis(redisUrl);
  if (!redis.ok) console.log(`redis variants skipped: ${redis.reason}`);
  const redisClient = redis.ok ? redis.client : undefined;
  if (redisClient) console.log(`redis ${redisUrl}, keys under ${redisPrefix}* (deleted after each run)`);
  const shape: Shape = {
    warmupS,
    durationS,
    connections,
    maxEntries,
    lib,
    redis: redisClient ? { url: redisUrl, prefix: redisPrefix, client: redisClient } : undefined,
  };

  const pairs = new Map<ExpressVariantName, Pair[]>(variants.map((v) => [v.name, []]));
  try {
    for (let round = 0; round < rounds; round++) {
      // Rotate the variants each round, and alternate which half of a pair runs first.
      const order = variants.map((_, i) => variants[(i + round) % variants.length] as ExpressVariant);
      for (const variant of order) {
        const one = (v: ExpressVariant): Promise<Run> =>
          v.store === 'redis' && !shape.redis
            ? Promise.resolve({ outcome: { ok: false, reason: redis.ok ? 'no Redis' : redis.reason } })
            : measureLogged(v, shape, pinning, retries, `round ${round + 1}/${rounds}`);
        let bareRun: Run;
        let mine: Run;
        if (round % 2 === 0) {
          bareRun = await one(bare);
          mine = await one(variant);
        } else {
          mine = await one(variant);
          bareRun = await one(bare);
        }
        pairs.get(variant.name)?.push({ round, bare: bareRun, mine });
      }
    }
    const missed = report(variants, pairs);
    if (values.profile) await profileMisses(missed, shape, pinning);
  } finally {
    if (redisClient) {
      await deleteKeys(redisClient, redisPrefix);
      await redisClient.close();
    }
  }
}

async function measureLogged(
  variant: ExpressVariant,
  shape: Shape,
  pinning: Pinning,
  retries: number,
  label: string,
): Promise<Run> {
  // leastContended keeps the least disturbed attempt's outcome: its Redis counters go with it.
  const runs = new Map<Outcome, Run>();
  const outcome = await leastContended(
    retries,
    async () => {
      const run = await measure(variant, shape, pinning);
      runs.set(run.outcome, run);
      return run.outcome;
    },
    (next, note) =>
      console.log(`  ${label}  ${variant.name.padEnd(14)} ${describeOutcome(next, fmt)}${note}`),
  );
  return runs.get(outcome) ?? { outcome };
}

/** One run: a fresh server child (fresh store), the replay check, warm-up, measured run. */
async function measure(
  variant: ExpressVariant,
  shape: Shape,
  pinning: Pinning,
  profile?: { dir: string; name: string },
): Promise<Run> {
  const redis = variant.store === 'redis' ? shape.redis : undefined;
  const config: ExpressChildConfig = {
    variant: variant.name,
    lib: shape.lib,
    maxEntries: shape.maxEntries,
    ...(redis ? { redis: { url: redis.url, prefix: redis.prefix } } : {}),
  };
  const child = ServerChild.start(SERVER, config, pinning.server, profile);
  try {
    const ready = await child.next(['ready'], 30_000);
    if (ready.type === 'unavailable') return { outcome: { ok: false, reason: ready.reason } };
    await replayCheck(ready.url, variant.name, {
      idempotent: variant.store !== 'none',
      key: variant.keys === 'replay' ? REPLAY_KEY : undefined,
      path: CHARGES_PATH,
    });
    // Redis counters around the measured run, for every variant: around a bare run they show
    // what other clients cost Redis meanwhile (the background the Redis variants are judged net of).
    const samples: RedisSample[] = [];
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

/** The run's Redis CPU per response net of the paired bare run's Redis background (µs/s × s). */
function netRedisUs(pair: Pair): number {
  const m = pair.mine;
  const b = pair.bare;
  if (!m.outcome.ok || !b.outcome.ok || !m.redis || !b.redis) return Number.NaN;
  const bareSeconds = b.outcome.result.responses / b.outcome.result.rps;
  const mineSeconds = m.outcome.result.responses / m.outcome.result.rps;
  const background = b.redis.cpuUs / bareSeconds;
  return (m.redis.cpuUs - background * mineSeconds) / m.outcome.result.responses;
}

/** Prints the table and the targets; returns the variants that missed a target. */
function report(
  variants: readonly ExpressVariant[],
  pairs: Map<ExpressVariantName, Pair[]>,
): ExpressVariantName[] {
  const ok = (run: Run): RoundResult | undefined => (run.outcome.ok ? run.outcome.result : undefined);
  const allBare = [...pairs.values()].flat().map((p) => p.bare);
  // Within each pair, then the median over the pairs.
  const paired = (
    name: ExpressVariantName,
    f: (r: RoundResult, b: RoundResult, p: Pair) => number,
  ): number[] =>
    (pairs.get(name) ?? []).map((p) => {
      const r = ok(p.mine);
      const b = ok(p.bare);
      return r && b ? f(r, b, p) : Number.NaN;
    });
  const perPair = (name: ExpressVariantName, f: (r: RoundResult, b: RoundResult, p: Pair) => number) =>
    median(paired(name, f));
  const ownOf = (runs: readonly Run[], f: (r: RoundResult, run: Run) => number): number =>
    median(runs.map((run) => (run.outcome.ok ? f(run.outcome.result, run) : Number.NaN)));
  const redisCpu = (r: RoundResult, run: Run) => (run.redis ? run.redis.cpuUs / r.responses : Number.NaN);
  const redisCalls = (r: RoundResult, run: Run) => (run.redis ? run.redis.calls / r.responses : Number.NaN);

  const rows: string[][] = [];
  const notes: string[] = [];
  const row = (label: string, runs: Run[], name?: ExpressVariantName) => {
    const okRuns = runs.filter((r) => r.outcome.ok);
    const skipped = runs.find((r) => !r.outcome.ok)?.outcome;
    if (skipped && !skipped.ok)
      notes.push(`${label}: skipped in ${runs.length - okRuns.length} runs (${skipped.reason})`);
    if (okRuns.length === 0) {
      rows.push([label, ...Array(12).fill('–')]);
      return;
    }
    const failures = okRuns.reduce((n, r) => n + (ok(r)?.non2xx ?? 0) + (ok(r)?.errors ?? 0), 0);
    const mine = (f: (r: RoundResult, run: Run) => number, digits = 0) => fmt(ownOf(runs, f), digits);
    const vsBare = (f: (r: RoundResult, b: RoundResult) => number, digits: number) =>
      name ? fmt(perPair(name, f), digits) : '';
    rows.push([
      label,
      mine((r) => r.rps),
      name ? vsBare((r, b) => r.rps / b.rps, 2) : '1.00',
      mine((r) => r.p50Ms, 2),
      mine((r) => r.p99Ms, 2),
      name ? vsBare((r, b) => r.p99Ms / b.p99Ms, 2) : '1.00',
      mine((r) => r.cpuUsPerReq, 1),
      vsBare((r, b) => r.cpuUsPerReq - b.cpuUsPerReq, 1),
      mine(redisCpu, 1),
      name?.startsWith('redis') ? fmt(median((pairs.get(name) ?? []).map(netRedisUs)), 1) : '',
      mine(redisCalls, 2),
      [
        mine((r) => 100 * r.serverUtil),
        mine((r) => 100 * r.serverWait),
        mine((r) => 100 * r.clientUtil),
      ].join(' / '),
      String(failures),
    ]);
  };
  row('bare Express (baseline)', allBare);
  for (const v of variants)
    row(
      v.label,
      (pairs.get(v.name) ?? []).map((p) => p.mine),
      v.name,
    );
  console.log('');
  printTable(
    [
      'variant',
      'req/s',
      '× bare',
      'p50 ms',
      'p99 ms',
      'p99 × bare',
      'CPU µs/req',
      '+CPU µs/req',
      'redis CPU µs/req',
      'redis net µs/req',
      'redis cmds/req',
      'srv CPU / wait / client CPU %',
      'non-2xx+err',
    ],
    rows,
  );
  for (const note of notes) console.log(`  ${note}`);

  console.log('\ntargets (reported, not asserted; × bare and +CPU are medians of per-pair values):');
  const missed = new Set<ExpressVariantName>();
  const has = (name: ExpressVariantName) => paired(name, () => 1).some(Number.isFinite);
  const present = (name: ExpressVariantName) => variants.some((v) => v.name === name);
  const list = (values: number[], digits: number) => values.map((x) => fmt(x, digits)).join(', ');
  const line = (name: ExpressVariantName, pass: boolean, text: string) => {
    const verdict = has(name) ? (pass ? 'PASS' : 'MISS') : 'n/a ';
    if (has(name) && !pass) missed.add(name);
    console.log(`  ${verdict}  ${text}`);
  };
  const ratios = (name: ExpressVariantName) => paired(name, (r, b) => r.rps / b.rps);
  const extras = (name: ExpressVariantName) => paired(name, (r, b) => r.cpuUsPerReq - b.cpuUsPerReq);

  for (const name of ['memory', 'redis'] as const) {
    if (!present(name)) continue;
    const target = TARGETS[name];
    const ratio = median(ratios(name));
    const extra = median(extras(name));
    line(
      name,
      ratio >= target.ratio,
      `${name}, unique keys: req/s ÷ bare = ${fmt(ratio, 2)} (target ≥ ${target.ratio}; pairs ${list(ratios(name), 2)}; by CPU per request ${fmt(
        perPair(name, (r, b) => b.cpuUsPerReq / r.cpuUsPerReq),
        2,
      )})`,
    );
    line(
      name,
      extra <= target.extraCpuUs,
      `${name}, unique keys: extra server CPU per executed request ${fmt(extra, 1)} µs (target ≤ ${target.extraCpuUs} µs${name === 'redis' ? ', client included' : ''}; pairs ${list(extras(name), 1)})`,
    );
  }
  for (const name of ['memory-replay', 'redis-replay'] as const) {
    if (!present(name)) continue;
    const ratio = median(ratios(name));
    line(
      name,
      ratio >= TARGETS.replayRatio,
      `${name}: req/s ÷ bare execution = ${fmt(ratio, 2)} (target ≥ ${fmt(TARGETS.replayRatio, 2)}; pairs ${list(ratios(name), 2)}; by CPU per request ${fmt(
        perPair(name, (r, b) => b.cpuUsPerReq / r.cpuUsPerReq),
        2,
      )})`,
    );
  }
  if (present('redis')) {
    const net = median((pairs.get('redis') ?? []).map(netRedisUs));
    const raw = ownOf(
      (pairs.get('redis') ?? []).map((p) => p.mine),
      redisCpu,
    );
    const calls = ownOf(
      (pairs.get('redis') ?? []).map((p) => p.mine),
      redisCalls,
    );
    line(
      'redis',
      net <= TARGETS.redisServerCpuUs,
      `redis server CPU per executed request ${fmt(net, 1)} µs net of the paired bare run's background (target ≤ ${TARGETS.redisServerCpuUs} µs; ${fmt(raw, 1)} µs before subtracting; ${fmt(calls, 2)} commands per request)`,
    );
  }
  return [...missed];
}

/**
 * `--profile`: a miss comes with a CPU profile. One more run of each variant that missed a
 * target, and of bare Express for comparison, each under `node --cpu-prof` (profiling slows the
 * server, so these runs are kept out of the table).
 */
async function profileMisses(
  missed: readonly ExpressVariantName[],
  shape: Shape,
  pinning: Pinning,
): Promise<void> {
  if (missed.length === 0) {
    console.log('\n--profile: every target passed, nothing to profile');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'idemkit-bench-prof-'));
  const names: ExpressVariantName[] = ['bare', ...missed];
  for (const name of names) {
    const variant = EXPRESS_VARIANTS.find((v) => v.name === name) as ExpressVariant;
    const run = await measure(variant, shape, pinning, { dir, name });
    console.log(`  profiled     ${name.padEnd(14)} ${describeOutcome(run.outcome, fmt)}`);
  }
  for (const name of names) {
    console.log(`\nserver profile, ${name} (one warm-up and measured run, under --cpu-prof):`);
    for (const text of summarizeProfiles(dir, `${name}.`)) console.log(text);
  }
  console.log(`\nprofiles: ${dir}`);
}
