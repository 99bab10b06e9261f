/*
 * What the chaos harness's processes share: the settings a server under test (SUT) is started
 * with, the names of the files every process appends to, and the monotonic clock they all log.
 *
 * Every process on this host logs `process.hrtime` (CLOCK_MONOTONIC, one clock per machine), so
 * the checker can order a claim in one process against a fault in another. A SUT started under
 * `faketime` gets FAKETIME_DONT_FAKE_MONOTONIC=1: its wall clock moves, its log clock does not.
 */

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

/** The stores a run can target; `pg-txn` is PostgreSQL in transactional mode. */
export type ChaosStoreKind = 'sqlite' | 'postgres' | 'redis' | 'pg-txn' | 'dynamodb';
export const STORE_KINDS: readonly ChaosStoreKind[] = ['sqlite', 'postgres', 'redis', 'pg-txn', 'dynamodb'];

/**
 * The kind of server under test: `app` is node:http with idemkit's engine (sut.ts); `gateway` is
 * `idemkit gateway` (startGateway) in front of one shared upstream app (sut-gateway.ts,
 * sut-upstream.ts).
 */
export type SutKind = 'app' | 'gateway';
export const SUT_KINDS: readonly SutKind[] = ['app', 'gateway'];

/** How a SUT reaches its store (already created: tables, files, instances). */
export type StoreSpec =
  | { kind: 'sqlite'; path: string }
  | { kind: 'postgres' | 'pg-txn'; url: string; table: string; effects: string }
  | { kind: 'redis'; url: string; prefix: string }
  | { kind: 'dynamodb'; endpoint: string; table: string };

export interface SutSettings {
  /** A short name for logs and ledgers, e.g. `sut-a`. */
  name: string;
  /** Folder of the run: ledgers, store logs, crash counters. */
  dir: string;
  store: StoreSpec;
  downstreamUrl: string;
  /** Gateway SUTs: the upstream app they forward covered requests to. */
  upstreamUrl?: string;
  /** Fixed port, so a restarted SUT is where the clients look. */
  port: number;
  leaseMs: number;
  storeTimeoutMs: number;
  /** Negative control: no idemkit at all, and a fresh downstream key per execution. */
  idempotency: boolean;
  /** Negative control: completions, heartbeats and releases ignore the owner token. */
  fencing: boolean;
  /** Crash-point enumeration (T53): SIGKILL self at this point, on its `hit`-th pass for the run. */
  crash?: { point: string; hit: number; onlyRetries: boolean };
}

/** The upstream app behind the gateway SUTs (sut-upstream.ts). */
export interface UpstreamSettings {
  dir: string;
  downstreamUrl: string;
  /** False (the negative control): a fresh downstream key per execution. */
  idempotency: boolean;
}

/** One JSONL file per writer, so appends from different processes never interleave. */
export const files = {
  ledger: (dir: string, sut: string) => join(dir, `ledger-${sut}-${process.pid}.jsonl`),
  storeOps: (dir: string, sut: string) => join(dir, `store-${sut}-${process.pid}.jsonl`),
  history: (dir: string, client: string) => join(dir, `history-${client}.jsonl`),
  downstream: (dir: string) => join(dir, 'downstream.jsonl'),
  faults: (dir: string) => join(dir, 'faults.jsonl'),
  crashHits: (dir: string) => join(dir, 'crash-hits'),
} as const;

/** Monotonic milliseconds, comparable across processes on this host. */
export function monoMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}

/** The path every workload request goes to. */
export const PAY_PATH = '/pay';
/**
 * Set by a gateway SUT on every request it forwards (sut-gateway.ts): `<sut> <pid> <generation>
 * <exec>`, so the upstream's effect entries name the execution the gateway logged.
 */
export const EXEC_HEADER = 'x-chaos-exec';
/** The header a client sends its principal in; the SUT also reads it for `principal()`. */
export const AUTH_PREFIX = 'Bearer chaos-';

/**
 * A helper process's server (downstream, upstream app): listens on an ephemeral loopback port,
 * prints `READY <port>` for the harness, and closes every connection on SIGTERM.
 */
export function serveUntilTerm(server: Server): void {
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`READY ${(server.address() as AddressInfo).port}\n`);
  });
  process.on('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
