import { randomBytes } from 'node:crypto';
import { constants, existsSync } from 'node:fs';
import { access, readdir, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '../../client/index.js';
import { startGateway } from '../../gateway/server.js';
import { openStore } from '../../gateway/store-url.js';
import { GATEWAY_DEFAULTS } from '../../gateway/types.js';
import { type FaultKind, type FaultProxy, startFaultProxy } from './fault-proxy.js';
import { startPaymentsApi } from './payments-api.js';
import { ledgerCounts, newTally, percentile, runWorkload, type Tally } from './workload.js';

export interface DemoOptions {
  /** Operations per side. */
  operations: number;
  /** Customers charging at once, per side. */
  concurrency: number;
  /** Share of responses the network loses after the charge was made. */
  faultRate: number;
  /** No new operation starts after this; started ones finish. */
  durationMs: number;
  /** The client's deadline per attempt. */
  timeoutMs: number;
  /** Folder of the temporary SQLite file. @default '.idemkit', or one in the OS temp folder when the working directory is read-only */
  dir?: string;
  /** Called about once a second while the demo runs. */
  onProgress?: (progress: DemoProgress) => void;
  /** Aborting (Ctrl-C) stops new operations; everything is still torn down. */
  signal?: AbortSignal;
}

export interface DemoProgress {
  elapsedMs: number;
  operations: number;
  sides: Record<'direct' | 'gateway', { done: number; faults: number; duplicates: number }>;
}

export interface SideResult {
  operations: number;
  succeeded: number;
  failed: number;
  requests: number;
  retries: number;
  faults: number;
  charges: number;
  duplicates: number;
  chargedTwice: number;
  replays: number;
  requestP50Ms: number;
  requestP99Ms: number;
  operationP50Ms: number;
  operationP99Ms: number;
}

export interface DemoResult {
  direct: SideResult;
  gateway: SideResult;
  elapsedMs: number;
  faultRate: number;
}

/**
 * payments API ◀── gateway (SQLite) ◀── fault proxy ◀── retrying customers   ("with idemkit")
 * payments API ◀────────────────────── fault proxy ◀── retrying customers   ("without")
 * Both sides run at once, on loopback, on random ports; everything is stopped at the end.
 */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const dir = options.dir ?? (await demoFolder());
  const dirExisted = existsSync(dir);
  const dbPath = join(dir, `demo-${process.pid}-${randomBytes(4).toString('hex')}.db`);
  const cleanup: (() => Promise<unknown>)[] = [];
  const started = performance.now();
  try {
    const api = await startPaymentsApi();
    cleanup.push(() => api.close());
    const opened = await openStore(`sqlite:${dbPath}`);
    cleanup.push(async () => {
      await opened.close();
      await Promise.all(
        ['', '-wal', '-shm', '-journal'].map((suffix) => rm(`${dbPath}${suffix}`, { force: true })),
      );
      if (!dirExisted && (await readdir(dir)).length === 0) await rmdir(dir);
    });
    const gateway = await startGateway({
      config: {
        ...GATEWAY_DEFAULTS,
        upstream: api.url,
        port: 0,
        // The demo needs no admin endpoints; a free port keeps it off a real gateway's 8788.
        adminPort: 0,
        store: `sqlite:${dbPath}`,
        replayHeaders: [],
        routes: [],
      },
      store: opened.store,
    });
    cleanup.push(() => gateway.close());
    const proxies: Record<'direct' | 'gateway', FaultProxy> = {
      direct: await startFaultProxy({ target: api.url, faultRate: options.faultRate }),
      gateway: await startFaultProxy({ target: gateway.url, faultRate: options.faultRate }),
    };
    cleanup.push(
      () => proxies.direct.close(),
      () => proxies.gateway.close(),
    );
    const client = createClient({
      timeoutMs: options.timeoutMs,
      retries: { limit: 9, baseDelayMs: 50, maxDelayMs: 1_000, maxRetryAfterMs: 2_000 },
      // The demo's network loses answers at a fixed rate on purpose; a retry budget would turn
      // them into give-ups, and the table is about what retries do, not about when to stop.
      budget: false,
    });
    cleanup.push(() => client.close());

    const tallies = { direct: newTally(), gateway: newTally() };
    const deadline = started + options.durationMs;
    const side = (name: 'direct' | 'gateway') =>
      runWorkload({
        client,
        url: `${proxies[name].url}/charges`,
        prefix: name,
        operations: options.operations,
        concurrency: options.concurrency,
        deadline,
        tally: tallies[name],
        ...(options.signal ? { signal: options.signal } : {}),
      });
    const progress = (): DemoProgress => ({
      elapsedMs: performance.now() - started,
      operations: options.operations,
      sides: {
        direct: snapshot(tallies.direct, proxies.direct, ledgerCounts(api.ledger, 'direct').duplicates),
        gateway: snapshot(tallies.gateway, proxies.gateway, ledgerCounts(api.ledger, 'gateway').duplicates),
      },
    });
    const ticker = setInterval(() => options.onProgress?.(progress()), 1_000);
    try {
      await Promise.all([side('direct'), side('gateway')]);
    } finally {
      clearInterval(ticker);
    }
    // A charge whose client gave up may still be running; count it before reading the ledger.
    await api.idle(5_000);
    options.onProgress?.(progress());
    return {
      direct: result(tallies.direct, proxies.direct, ledgerCounts(api.ledger, 'direct')),
      gateway: result(tallies.gateway, proxies.gateway, ledgerCounts(api.ledger, 'gateway')),
      elapsedMs: performance.now() - started,
      faultRate: options.faultRate,
    };
  } finally {
    // Reverse order: clients and proxies first, the gateway drains, then the store and the API.
    for (const step of cleanup.reverse()) await step().catch(() => {});
  }
}

/** `.idemkit` like the gateway's default store, unless the working directory is read-only. */
async function demoFolder(): Promise<string> {
  try {
    await access('.', constants.W_OK);
    return '.idemkit';
  } catch {
    return join(tmpdir(), 'idemkit');
  }
}

const faultCount = (proxy: FaultProxy) =>
  (Object.keys(proxy.faults) as FaultKind[]).reduce((sum, kind) => sum + proxy.faults[kind], 0);

function snapshot(tally: Tally, proxy: FaultProxy, duplicates: number) {
  return { done: tally.succeeded + tally.failed, faults: faultCount(proxy), duplicates };
}

function result(tally: Tally, proxy: FaultProxy, ledger: ReturnType<typeof ledgerCounts>): SideResult {
  return {
    operations: tally.started,
    succeeded: tally.succeeded,
    failed: tally.failed,
    requests: tally.requests,
    retries: tally.requests - tally.started,
    faults: faultCount(proxy),
    ...ledger,
    replays: tally.replays,
    requestP50Ms: percentile(tally.requestMs, 50),
    requestP99Ms: percentile(tally.requestMs, 99),
    operationP50Ms: percentile(tally.operationMs, 50),
    operationP99Ms: percentile(tally.operationMs, 99),
  };
}
