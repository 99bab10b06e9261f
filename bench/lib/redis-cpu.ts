import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@redis/client';
import { Redis } from 'ioredis';
import { redisStore } from '../../src/stores/redis.js';
import type { StoredResponse } from '../../src/stores/types.js';
import { freePort } from './free-port.js';

/*
 * Redis server CPU per executed request (claim + complete, the engine's two store calls), on a
 * private redis-server this bench starts (and stops by PID), so other clients of a shared server
 * do not count. Server CPU is used_cpu_user + used_cpu_sys from INFO cpu (getrusage: real CPU,
 * parsing and socket work included), read before and after a fixed number of pairs. The
 * baseline is the least any store could do: a plain SET NX PX then SET XX PX per pair. Client
 * CPU is this process's process.cpuUsage() over the same pairs. 50 pairs in flight on one
 * connection per client, variants interleaved round by round, medians printed.
 */

const LANES = 50;
const TARGET_SERVER_US = 10;
const RESPONSE: StoredResponse = {
  status: 201,
  headers: [['content-type', 'application/json']],
  body: Buffer.from('{"id":"ch_123","amount":1000,"currency":"eur"}'),
};
// As long as the engine's: a base64url HMAC-SHA256 fingerprint and a 128-bit hex token.
const FINGERPRINT = randomBytes(32).toString('base64url');

type Pair = (key: string, token: string) => Promise<void>;

interface Sample {
  serverUs: number;
  clientUs: number;
}

async function startRedis(): Promise<{ url: string; stop(): void }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'idemkit-bench-redis-'));
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const stop = () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  const url = `redis://127.0.0.1:${port}`;
  const probe = createClient({ url });
  probe.on('error', () => {});
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await probe.connect();
      await probe.ping();
      probe.destroy();
      return { url, stop };
    } catch (error) {
      if (Date.now() > deadline || child.exitCode !== null) {
        stop();
        throw new Error(`redis-server did not start on ${port}: ${String(error)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

type Client = { sendCommand(args: string[]): Promise<unknown> };

async function serverCpuUs(client: Client): Promise<number> {
  const info = String(await client.sendCommand(['INFO', 'cpu']));
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? Number.NaN);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6;
}

async function measure(pair: Pair, pairs: number, run: string, info: Client): Promise<Sample> {
  const tokens = Array.from({ length: pairs }, () => randomBytes(16).toString('hex'));
  let next = 0;
  const lane = async () => {
    while (next < pairs) {
      const i = next++;
      await pair(`${run}-${i}`, tokens[i] ?? '');
    }
  };
  const server0 = await serverCpuUs(info);
  const client0 = process.cpuUsage();
  await Promise.all(Array.from({ length: LANES }, lane));
  const client = process.cpuUsage(client0);
  const server1 = await serverCpuUs(info);
  return { serverUs: (server1 - server0) / pairs, clientUs: (client.user + client.system) / pairs };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

/** Prints the Redis server (and client) CPU per claim + complete; `redis-server` must be installed. */
export async function runRedisServerCpu(pairs: number, rounds: number): Promise<void> {
  let server: { url: string; stop(): void };
  try {
    server = await startRedis();
  } catch (error) {
    console.log(`\nRedis server CPU: skipped (${(error as Error).message}; install redis-server)`);
    return;
  }
  const nodeRedis = createClient({ url: server.url });
  const info = createClient({ url: server.url });
  const ioredis = new Redis(server.url);
  try {
    await Promise.all([nodeRedis.connect(), info.connect()]);
    const prefix = 'idemkit:';
    const k = (key: string) => `${prefix}{${key}}`;
    const viaStore = (client: Parameters<typeof redisStore>[0]['client']): Pair => {
      const store = redisStore({ client, prefix });
      return async (key, token) => {
        await store.claim({ key, fingerprint: FINGERPRINT, token, leaseMs: 30_000, retentionMs: 86_400_000 });
        await store.complete({ key, token, response: RESPONSE, retentionMs: 86_400_000 });
      };
    };
    const variants: [string, Pair][] = [
      [
        'raw node-redis SET NX PX + SET XX PX',
        async (key) => {
          await nodeRedis.sendCommand(['SET', k(key), 'x', 'NX', 'PX', '86430000']);
          await nodeRedis.sendCommand(['SET', k(key), 'y', 'XX', 'PX', '86400000']);
        },
      ],
      ['idemkit redisStore (node-redis)', viaStore(nodeRedis)],
      [
        'raw ioredis SET NX PX + SET XX PX',
        async (key) => {
          await ioredis.set(k(key), 'x', 'PX', 86_430_000, 'NX');
          await ioredis.set(k(key), 'y', 'PX', 86_400_000, 'XX');
        },
      ],
      ['idemkit redisStore (ioredis)', viaStore(ioredis)],
    ];
    for (const [name, pair] of variants) await measure(pair, Math.min(pairs, 2_000), `warm-${name}`, info);
    const samples = new Map<string, Sample[]>();
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? variants : [...variants].reverse();
      for (const [name, pair] of order) {
        const sample = await measure(pair, pairs, `r${round}-${randomBytes(3).toString('hex')}`, info);
        samples.set(name, [...(samples.get(name) ?? []), sample]);
      }
      await info.sendCommand(['FLUSHALL']);
    }
    console.log(
      `\nRedis server CPU per claim + complete (private redis-server, ${pairs} pairs, ${LANES} in flight, median of ${rounds} rounds; target ≤ ${TARGET_SERVER_US} µs)\n`,
    );
    console.log('| variant | server µs/pair | rounds | vs raw | target | client µs/pair | vs raw |');
    console.log('|---|---:|---|---:|---|---:|---:|');
    let raw: Sample | undefined;
    for (const [name] of variants) {
      const s = samples.get(name) ?? [];
      const server = median(s.map((x) => x.serverUs));
      const client = median(s.map((x) => x.clientUs));
      const isRaw = name.startsWith('raw');
      if (isRaw) raw = { serverUs: server, clientUs: client };
      const verdict = isRaw ? '' : server <= TARGET_SERVER_US ? 'PASS' : 'MISS';
      const cells = [
        name,
        server.toFixed(1),
        s.map((x) => x.serverUs.toFixed(1)).join(' / '),
        isRaw ? '1.00×' : `${(server / (raw?.serverUs ?? Number.NaN)).toFixed(2)}×`,
        verdict,
        client.toFixed(1),
        isRaw ? '1.00×' : `${(client / (raw?.clientUs ?? Number.NaN)).toFixed(2)}×`,
      ];
      console.log(`| ${cells.join(' | ')} |`);
    }
  } finally {
    nodeRedis.destroy();
    info.destroy();
    ioredis.disconnect();
    server.stop();
  }
}
