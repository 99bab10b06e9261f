/**
 * `npm run bench -- instructions [--frameworks express] [--stores none,memory,redis]
 * [--gateway memory,memory-replay,redis,redis-replay] [--requests 3000] [--warmup 4000]
 * [--pairs 10000] [--redis <url>] [--src <dir>] [--tsx]`: what a request costs in CPU
 * instructions, counted by valgrind's callgrind, next to the bare framework (and, with
 * `--gateway`, what a gateway request costs next to the bare undici proxy); and what a claim +
 * complete costs a Redis server, next to the two plain SETs any store needs at least.
 *
 * Why instructions: on a shared or small machine, CPU time and req/s move by ±30 % between two
 * runs of the same server (see bench/README.md), which hides any change under ~20 %. An
 * instruction count does not depend on what else the machine does: Redis's is the same within
 * 0.5 % run to run, a Node server's within a few % (bare Express ±2 %, with idemkit ±5 %: when
 * V8 collects and compiles still varies), so a change of ~10 % shows in one run and smaller ones
 * in the median of a few. It is not the metric: it leaves out the
 * kernel (socket reads and writes, which bare and idemkit share) and cache misses, so the ratio
 * here is not a req/s ratio; the adapters, gateway and core benches measure that.
 *
 * How: each server (bench/lib/adapter-server.ts, the adapters bench's apps) runs under
 * `valgrind --tool=callgrind` (JIT code, GC and compiler threads all counted); it gets `--warmup`
 * requests, its counters are zeroed (`callgrind_control -z`), it gets `--requests` more, and the
 * counters are dumped: instructions ÷ requests. Requests go out over 8 keep-alive connections with
 * the adapters bench's headers and 88-byte bodies, a fresh key each (every request executes).
 * `--gateway` does the same with the gateway bench's proxies (bench/lib/gateway-server.ts) in
 * front of its upstream (bench/lib/upstream.ts, not counted); the bare proxy is always counted
 * first. Replay variants send one key and body, executed once before the warm-up.
 * The Redis part runs `redis-server` under callgrind on a free loopback port, zeroed after a
 * warm-up in the same way; the client is this process.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createClient } from '@redis/client';
import {
  type AdapterChildConfig,
  type AdapterVariant,
  CHARGES_PATH,
  FRAMEWORK_LABELS,
  FRAMEWORKS,
  type Framework,
  variantName,
} from './lib/adapter-variants.js';
import { compileSources } from './lib/build.js';
import { ServerChild } from './lib/child.js';
import { freePort } from './lib/free-port.js';
import {
  GATEWAY_VARIANTS,
  type GatewayChildConfig,
  type GatewayVariant,
  type GatewayVariantName,
} from './lib/gateway-variants.js';
import { replayCheck } from './lib/measure.js';
import { connectRedis, deleteKeys, loopbackRedis } from './lib/redis-stats.js';
import { fmt, printTable } from './lib/table.js';
import { BENCH_AUTH, orderBody, PATH, REPLAY_KEY } from './lib/variants.js';

const SERVER = fileURLToPath(new URL('./lib/adapter-server.ts', import.meta.url));
const PROXY = fileURLToPath(new URL('./lib/gateway-server.ts', import.meta.url));
const UPSTREAM = fileURLToPath(new URL('./lib/upstream.ts', import.meta.url));
const CONNECTIONS = 8;

export async function run(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      frameworks: { type: 'string', default: 'express' },
      stores: { type: 'string', default: 'none,memory,redis' },
      gateway: { type: 'string', default: '' },
      requests: { type: 'string', default: '3000' },
      warmup: { type: 'string', default: '4000' },
      pairs: { type: 'string', default: '10000' },
      redis: { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
      src: { type: 'string' },
      tsx: { type: 'boolean', default: false },
    },
  });
  if (spawnSync('valgrind', ['--version']).status !== 0) {
    console.log('instructions: skipped (valgrind is not installed: apt-get install -y valgrind)');
    return;
  }
  const frameworks = values.frameworks.split(',') as Framework[];
  for (const f of frameworks) if (!FRAMEWORKS.includes(f)) throw new Error(`unknown framework: ${f}`);
  const stores = values.stores.split(',') as ('none' | 'memory' | 'redis')[];
  for (const s of stores)
    if (!['none', 'memory', 'redis'].includes(s)) throw new Error(`unknown store: ${s}`);
  const gateway = values.gateway === '' ? [] : values.gateway.split(',');
  for (const name of gateway) {
    const known = GATEWAY_VARIANTS.find((v) => v.name === name);
    if (!known || known.store === 'none') throw new Error(`unknown gateway variant: ${name}`);
  }
  const redisUrl = loopbackRedis(values.redis);
  const requests = Math.max(200, Number(values.requests));
  const warmup = Math.max(200, Number(values.warmup));
  const srcDir = resolve(values.src ?? join(import.meta.dirname, '..', 'src'));
  let lib: AdapterChildConfig['lib'] = { dir: srcDir, ext: '.ts' };
  if (!values.tsx) {
    const built = compileSources(srcDir);
    process.once('exit', built.remove);
    lib = { dir: built.dir, ext: '.js' };
  }
  console.log(
    `\nCPU instructions per request (callgrind; ${warmup} warm-up requests, then ${requests} counted; ${CONNECTIONS} keep-alive connections, a fresh key each unless a row says replays)`,
  );
  for (const framework of frameworks) {
    const rows: string[][] = [];
    const row = tableRows();
    for (const store of stores) {
      const variant: AdapterVariant = { framework, store, keys: 'unique' };
      const prefix = `idemkit-bench-${randomBytes(4).toString('hex')}:`;
      const config: AdapterChildConfig = {
        variant,
        lib,
        maxEntries: warmup + requests + 1_000,
        // Under valgrind everything runs ~50× slower: a Redis round trip must not time out.
        storeTimeoutMs: 120_000,
        ...(store === 'redis' ? { redis: { url: redisUrl, prefix } } : {}),
      };
      const name = variantName(variant);
      const perRequest = await countServer(SERVER, config, warmup, requests, {
        name,
        idempotent: store !== 'none',
        path: CHARGES_PATH,
      });
      if (store === 'redis') await deleteRunKeys(redisUrl, prefix);
      rows.push(row(name, perRequest, store === 'none'));
    }
    console.log(`\n${FRAMEWORK_LABELS[framework]}\n`);
    printTable(['variant', 'instructions / request', '× bare', 'extra / request'], rows);
  }
  if (gateway.length > 0) {
    const names = ['bare', ...gateway] as GatewayVariantName[];
    await countGateway(
      names.map((name) => GATEWAY_VARIANTS.find((v) => v.name === name) as GatewayVariant),
      { lib, redisUrl, warmup, requests },
    );
  }
  await countRedisServer(lib, Math.max(1_000, Number(values.pairs)));
}

/** One table's rows: the first (bare) sets the baseline the others are compared with. */
function tableRows() {
  let bare = Number.NaN;
  return (name: string, perRequest: number | undefined, isBare: boolean): string[] => {
    if (perRequest === undefined) return [name, 'unavailable', '', ''];
    if (isBare) bare = perRequest;
    return [
      name,
      fmt(perRequest),
      isBare ? '1.00' : fmt(perRequest / bare, 2),
      isBare ? '' : `${perRequest >= bare ? '+' : ''}${fmt(perRequest - bare)}`,
    ];
  };
}

/**
 * The gateway's proxies under callgrind, in front of one upstream child (not counted). A replay
 * variant's requests all carry the replay check's key and body: each one is a replay.
 */
async function countGateway(
  variants: readonly GatewayVariant[],
  shape: { lib: GatewayChildConfig['lib']; redisUrl: string; warmup: number; requests: number },
): Promise<void> {
  const upstream = ServerChild.start(UPSTREAM, {}, undefined);
  try {
    const up = await upstream.next(['ready'], 30_000);
    if (up.type !== 'ready') throw new Error(`upstream: ${up.reason}`);
    const row = tableRows();
    const rows: string[][] = [];
    for (const variant of variants) {
      const prefix = `idemkit-bench-${randomBytes(4).toString('hex')}:`;
      const config: GatewayChildConfig = {
        variant: variant.name,
        lib: shape.lib,
        upstream: up.url,
        maxEntries: shape.warmup + shape.requests + 1_000,
        storeTimeoutMs: 120_000,
        ...(variant.store === 'redis' ? { redis: { url: shape.redisUrl, prefix } } : {}),
      };
      const replay = variant.keys === 'replay';
      const perRequest = await countServer(PROXY, config, shape.warmup, shape.requests, {
        name: variant.name,
        idempotent: variant.store !== 'none',
        path: PATH,
        ...(replay ? { replayKey: REPLAY_KEY } : {}),
      });
      if (variant.store === 'redis') await deleteRunKeys(shape.redisUrl, prefix);
      rows.push(row(variant.label, perRequest, variant.store === 'none'));
    }
    console.log(
      '\nGateway, next to the bare undici proxy (the upstream not counted; in a replays row every counted request is a replay)\n',
    );
    printTable(['variant', 'instructions / request', '× bare', 'extra / request'], rows);
  } finally {
    await upstream.stop();
  }
}

/** Deletes a Redis run's keys; best effort (they expire with the bench's retention anyway). */
async function deleteRunKeys(url: string, prefix: string): Promise<void> {
  const connected = await connectRedis(url);
  if (!connected.ok) return;
  try {
    await deleteKeys(connected.client, prefix);
  } finally {
    connected.client.destroy();
  }
}

/** What a counted server is sent: its path, and for a replay variant the one key (with body 0). */
interface Load {
  name: string;
  idempotent: boolean;
  path: string;
  replayKey?: string;
}

/** Instructions per request of one server child under callgrind; `undefined` if it could not start. */
async function countServer(
  script: string,
  config: AdapterChildConfig | GatewayChildConfig,
  warmup: number,
  requests: number,
  load: Load,
): Promise<number | undefined> {
  const dir = mkdtempSync(join(tmpdir(), 'idemkit-bench-cg-'));
  const child = ServerChild.start(script, config, undefined, undefined, [
    'valgrind',
    '--tool=callgrind',
    `--callgrind-out-file=${join(dir, 'cg.out')}`,
    '--quiet',
  ]);
  try {
    const ready = await child.next(['ready'], 300_000);
    if (ready.type === 'unavailable') return undefined;
    await replayCheck(ready.url, load.name, {
      idempotent: load.idempotent,
      path: load.path,
      key: load.replayKey,
    });
    await send(ready.url, warmup, load);
    control(child.pid, '-z');
    await send(ready.url, requests, load);
    control(child.pid, '-d');
    return dumpedInstructions(dir) / requests;
  } finally {
    await child.stop(120_000);
    rmSync(dir, { recursive: true, force: true });
  }
}

let seq = 0;

/**
 * `count` POSTs over CONNECTIONS keep-alive connections, fresh keys (or the replay key and body 0);
 * every one must be a 201.
 */
async function send(url: string, count: number, { name, path, replayKey }: Load): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const { hostname, port } = new URL(url);
  let left = count;
  const one = () =>
    new Promise<void>((done, fail) => {
      const n = replayKey === undefined ? ++seq : 0;
      const body = orderBody(n);
      const req = request(
        {
          host: hostname,
          port,
          method: 'POST',
          path,
          agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            authorization: BENCH_AUTH,
            'idempotency-key': replayKey ?? `instr-${process.pid}-${n.toString(16).padStart(12, '0')}`,
          },
        },
        (res) => {
          res.resume();
          res.once('end', () =>
            res.statusCode === 201 ? done() : fail(new Error(`${name}: got ${res.statusCode}`)),
          );
        },
      );
      req.once('error', fail);
      req.end(body);
    });
  const lane = async () => {
    while (left > 0) {
      left--;
      await one();
    }
  };
  try {
    await Promise.all(Array.from({ length: CONNECTIONS }, lane));
  } finally {
    agent.destroy();
  }
}

function control(pid: number | undefined, flag: '-z' | '-d'): void {
  if (pid === undefined) throw new Error('no child process id');
  const result = spawnSync('callgrind_control', [flag, String(pid)], { encoding: 'utf8', timeout: 120_000 });
  if (result.status !== 0) throw new Error(`callgrind_control ${flag} failed: ${result.stderr}`);
}

/** The instruction total of the one dump `callgrind_control -d` wrote (`cg.out.1`). */
function dumpedInstructions(dir: string): number {
  const dumps = readdirSync(dir).filter((f) => /^cg\.out\.\d+$/.test(f));
  if (dumps.length !== 1) throw new Error(`expected one callgrind dump in ${dir}, found ${dumps.length}`);
  const text = readFileSync(join(dir, dumps[0] as string), 'utf8');
  const total = /^(?:summary|totals): (\d+)/m.exec(text)?.[1];
  if (total === undefined) throw new Error('callgrind dump without a total');
  return Number(total);
}

/**
 * Instructions a private redis-server executes per claim + complete: plain `SET NX PX` then
 * `SET XX PX` (the least any store does) against idemkit's redisStore, 50 pairs in flight on one
 * connection, the same value sizes.
 */
async function countRedisServer(lib: AdapterChildConfig['lib'], pairs: number): Promise<void> {
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    console.log('\nRedis server instructions: skipped (redis-server is not installed)');
    return;
  }
  const { redisStore } = (await import(
    pathToFileURL(join(lib.dir, `stores/redis${lib.ext}`)).href
  )) as typeof import('../src/stores/redis.js');
  const fingerprint = randomBytes(32).toString('base64url');
  const response = {
    status: 201,
    headers: [['content-type', 'application/json']] as [string, string][],
    body: Buffer.from('{"id":"ch_123","amount":1000,"currency":"eur"}'),
  };
  const rows: string[][] = [];
  let raw = Number.NaN;
  for (const variant of ['raw SET NX PX + SET XX PX', 'idemkit redisStore claim + complete'] as const) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'idemkit-bench-rcg-'));
    const server: ChildProcess = spawn(
      'valgrind',
      [
        '--tool=callgrind',
        `--callgrind-out-file=${join(dir, 'cg.out')}`,
        '--quiet',
        'redis-server',
        ...['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'],
      ],
      { stdio: 'ignore' },
    );
    const client = createClient({ url: `redis://127.0.0.1:${port}` });
    client.on('error', () => {});
    try {
      await connectWithin(client, 60_000);
      const store = redisStore({
        client: client as unknown as Parameters<typeof redisStore>[0]['client'],
        prefix: 'bench:',
      });
      const pair = async (n: number) => {
        const key = `k${n}`;
        if (variant.startsWith('raw')) {
          await client.sendCommand(['SET', `bench:{${key}}`, 'x'.repeat(110), 'NX', 'PX', '86430000']);
          await client.sendCommand(['SET', `bench:{${key}}`, 'y'.repeat(200), 'XX', 'PX', '86400000']);
          return;
        }
        const token = randomBytes(16).toString('hex');
        await store.claim({ key, fingerprint, token, leaseMs: 30_000, retentionMs: 86_400_000 });
        if (!(await store.complete({ key, token, response, retentionMs: 86_400_000 })))
          throw new Error('a completion was refused');
      };
      await pairsInFlight(pair, 0, Math.min(pairs, 2_000));
      control(server.pid, '-z');
      await pairsInFlight(pair, 1_000_000, pairs);
      control(server.pid, '-d');
      const perPair = dumpedInstructions(dir) / pairs;
      if (variant.startsWith('raw')) raw = perPair;
      rows.push([variant, fmt(perPair), variant.startsWith('raw') ? '1.00' : fmt(perPair / raw, 2)]);
    } finally {
      client.destroy();
      server.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(
    `\nRedis server instructions per claim + complete (private redis-server under callgrind, ${pairs} pairs, 50 in flight)\n`,
  );
  printTable(['variant', 'instructions / pair', '× raw'], rows);
}

async function connectWithin(
  client: { connect(): Promise<unknown>; ping(): Promise<unknown> },
  ms: number,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await client.connect();
      await client.ping();
      return;
    } catch (error) {
      if (Date.now() > deadline)
        throw new Error(`redis-server under valgrind did not start: ${String(error)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function pairsInFlight(pair: (n: number) => Promise<void>, from: number, count: number): Promise<void> {
  let next = from;
  const end = from + count;
  const lane = async () => {
    while (next < end) await pair(next++);
  };
  await Promise.all(Array.from({ length: 50 }, lane));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run(process.argv.slice(2));
