/**
 * One measured run against a server child, shared by the HTTP benches: warm-up, then a measured
 * autocannon run with the server's CPU (and an upstream child's, and an outside process's) sampled
 * around it; the replay check every variant passes first; re-measuring a contended run.
 */
import { type Pinning, ServerChild } from './child.js';
import { runLoad } from './load.js';
import type { RawLimits } from './raw-sqlite.js';
import { BENCH_AUTH, orderBody, PATH, type RawSqliteResult } from './variants.js';

export interface RoundResult {
  /** Responses received during the measured run (any status). */
  responses: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Server CPU (user + system, all threads) per response, µs. */
  cpuUsPerReq: number;
  /**
   * The system (kernel) part of cpuUsPerReq: socket reads and writes, locks. A variant whose CPU
   * grows in user time with few more instructions (bench instructions) is stalling, not computing.
   */
  systemUsPerReq: number;
  /** The server's main thread alone (no GC or compiler helper threads) per response, µs. */
  mainUsPerReq: number;
  /** Server CPU time / wall time of the measured run. */
  serverUtil: number;
  /** Server run-queue wait / wall time: another process had the server's core (-1: unknown). */
  serverWait: number;
  clientUtil: number;
  non2xx: number;
  errors: number;
  /** The upstream child's CPU per response, µs (NaN without one). */
  upstreamCpuUsPerReq: number;
  /** The upstream child's CPU / wall time (NaN without one). */
  upstreamUtil: number;
  /** Requests that reached the upstream per response (NaN without one, or if it does not count). */
  upstreamPerResponse: number;
  /** CPU of the outside process (`MeasureOptions.outsideCpuUs`) per response, µs (NaN without one). */
  outsideCpuUsPerReq: number;
}

export type Outcome = { ok: true; result: RoundResult } | { ok: false; reason: string };

/** A run whose server waited this share of the time for its core is measured again. */
export const CONTENDED = 0.1;

export interface MeasureOptions {
  url: string;
  connections: number;
  keys: 'unique' | 'replay';
  warmupS: number;
  durationS: number;
  /** Offered load, requests per second; unset: closed loop, as fast as the server answers. */
  rate?: number | undefined;
  /** The path requests go to. @default PATH */
  path?: string | undefined;
  /**
   * A pause between the warm-up and the measured run, so requests still in flight when the
   * warm-up stopped are done before the counters are read. @default 0
   */
  settleMs?: number;
  /** An upstream child behind the server: its CPU and how many requests reach it. */
  upstream?: ServerChild;
  /**
   * A cumulative CPU counter (µs) of a process the bench does not start (a Redis server), read
   * before and after the measured run.
   */
  outsideCpuUs?: () => Promise<number>;
}

/** Warm-up, then the measured run; CPU deltas are taken over the measured run only. */
export async function measureRun(server: ServerChild, options: MeasureOptions): Promise<RoundResult> {
  const load = {
    url: options.url,
    connections: options.connections,
    keys: options.keys,
    rate: options.rate,
    path: options.path,
  };
  if (options.warmupS > 0) await runLoad({ ...load, durationS: options.warmupS });
  if (options.settleMs) await new Promise((resolve) => setTimeout(resolve, options.settleMs));
  const { upstream, outsideCpuUs } = options;
  const outside0 = outsideCpuUs ? await outsideCpuUs() : Number.NaN;
  const upstream0 = upstream ? await upstream.cpu() : undefined;
  const client0 = process.cpuUsage();
  const server0 = await server.cpu();
  const wall0 = performance.now();
  const result = await runLoad({ ...load, durationS: options.durationS });
  const server1 = await server.cpu();
  const wallUs = (performance.now() - wall0) * 1_000;
  const client = process.cpuUsage(client0);
  const upstream1 = upstream ? await upstream.cpu() : undefined;
  const outside1 = outsideCpuUs ? await outsideCpuUs() : Number.NaN;
  const serverUs = server1.cpuUs - server0.cpuUs;
  const upstreamUs = upstream0 && upstream1 ? upstream1.cpuUs - upstream0.cpuUs : Number.NaN;
  const served =
    upstream0 && upstream1 && upstream0.served >= 0 ? upstream1.served - upstream0.served : Number.NaN;
  return {
    responses: result.responses,
    rps: result.rps,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    cpuUsPerReq: serverUs / result.responses,
    systemUsPerReq: (server1.systemUs - server0.systemUs) / result.responses,
    mainUsPerReq: server0.mainUs < 0 ? Number.NaN : (server1.mainUs - server0.mainUs) / result.responses,
    serverUtil: serverUs / wallUs,
    serverWait: server0.waitUs < 0 ? -1 : (server1.waitUs - server0.waitUs) / wallUs,
    clientUtil: (client.user + client.system) / wallUs,
    non2xx: result.non2xx,
    errors: result.errors,
    upstreamCpuUsPerReq: upstreamUs / result.responses,
    upstreamUtil: upstreamUs / wallUs,
    upstreamPerResponse: served / result.responses,
    outsideCpuUsPerReq: (outside1 - outside0) / result.responses,
  };
}

/**
 * Runs `attempt` up to `1 + retries` times while the server waited more than `CONTENDED` of the
 * time for its core, and keeps the least disturbed outcome. `log` sees every attempt.
 */
export async function leastContended(
  retries: number,
  attempt: () => Promise<Outcome>,
  log: (outcome: Outcome, note: string) => void,
): Promise<Outcome> {
  let best: Outcome | undefined;
  for (let i = 0; i <= retries; i++) {
    const next = await attempt();
    if (!best || (next.ok && (!best.ok || next.result.serverWait < best.result.serverWait))) best = next;
    const contended = next.ok && next.result.serverWait > CONTENDED;
    log(next, contended ? (i < retries ? ' (contended: again)' : ' (contended)') : '');
    if (!contended) break;
  }
  return best as Outcome;
}

/** The one line a run prints as it finishes. */
export function describeOutcome(outcome: Outcome, fmt: (n: number, digits?: number) => string): string {
  if (!outcome.ok) return `skipped: ${outcome.reason}`;
  const r = outcome.result;
  return `${fmt(r.rps)} req/s, p99 ${fmt(r.p99Ms, 2)} ms, ${fmt(r.cpuUsPerReq, 1)} µs CPU/req (system ${fmt(r.systemUsPerReq, 1)}), server CPU ${fmt(100 * r.serverUtil)}% wait ${fmt(100 * r.serverWait)}%`;
}

/**
 * Before loading a variant, one request twice over plain fetch: the first must answer 201 and,
 * behind idemkit (`idempotent`), execute (`Idempotent-Replayed: false`); the second must then
 * replay it byte for byte. `key`: the replay variants' one key (this is their one execution).
 */
export async function replayCheck(
  url: string,
  name: string,
  options: { idempotent: boolean; key?: string | undefined; path?: string | undefined },
): Promise<void> {
  const key = options.key ?? `sanity-${process.pid}-${Date.now()}`;
  const post = () =>
    fetch(`${url}${options.path ?? PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: BENCH_AUTH, 'idempotency-key': key },
      body: orderBody(0),
    });
  const first = await post();
  const firstBody = await first.text();
  if (first.status !== 201) throw new Error(`${name}: sanity request got ${first.status} ${firstBody}`);
  if (!options.idempotent) return;
  const second = await post();
  const secondBody = await second.text();
  const flags = [first.headers.get('idempotent-replayed'), second.headers.get('idempotent-replayed')].join(
    '/',
  );
  if (second.status !== 201 || flags !== 'false/true' || secondBody !== firstBody) {
    throw new Error(`${name}: sanity replay failed (${second.status}, replayed ${flags})`);
  }
}

/**
 * The raw SQLite statements of a claim and a completion (raw-sqlite.ts), timed in a child on the
 * server's core, so they run where the server under test runs.
 */
export async function measureRawSqlite(limits: RawLimits, pinning: Pinning): Promise<RawSqliteResult> {
  const child = ServerChild.spawn({ raw: limits, maxEntries: 0 }, pinning);
  try {
    const message = await child.next(['raw'], 60_000);
    if (message.type !== 'raw') throw new Error(`raw sqlite: ${message.reason}`);
    return message.result;
  } finally {
    await child.stop();
  }
}

/** A numeric flag within [min, max], or a message naming the flag. */
export function bounded(name: string, text: string | undefined, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new Error(`--${name}: expected a number in [${min}, ${max}], got ${text}`);
  }
  return value;
}
