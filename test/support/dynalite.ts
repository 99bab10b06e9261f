import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { createTable } from '../../src/stores/dynamodb.js';
import { freePort } from './redis-server.js';

/*
 * dynalite (a DynamoDB implementation on LevelDB, from npm) for the DynamoDB store's tests, on
 * 127.0.0.1 only: in this process (in-memory), or as a child process stopped and restarted by
 * its PID (outages), optionally on a LevelDB directory so its data survives a restart. Clients get
 * static dummy credentials and a region: nothing is read from ~/.aws or the environment.
 */

const require = createRequire(import.meta.url);
type Dynalite = (options: {
  createTableMs?: number;
  deleteTableMs?: number;
  updateTableMs?: number;
}) => Server;
const dynalite = require('dynalite') as Dynalite;
const CLI = require.resolve('dynalite/cli.js');

export interface InProcessDynalite {
  endpoint: string;
  close(): Promise<void>;
}

/** dynalite in this process, in memory, on a free loopback port. */
export async function startDynalite(): Promise<InProcessDynalite> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  // Node closes a keep-alive socket idle for 5 s, racing a client that reuses it just then
  // (ECONNRESET on a request that never arrived). Tests send with maxAttempts 1, so the sockets
  // stay open until close(); the SDK's retries cover that race in production.
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A client for the test endpoint. `maxAttempts: 1` by default: tests see each request's own
 * answer; the outage test sets its own timeouts.
 */
export function dynamoClient(endpoint: string, config: DynamoDBClientConfig = {}): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'idemkit-test', secretAccessKey: 'idemkit-test' },
    maxAttempts: 1,
    ...config,
  });
}

/** A fresh table with a random name, made by the store's own createTable(). */
export async function freshTable(client: DynamoDBClient, label = 'idemkit'): Promise<string> {
  const tableName = `${label}-${randomBytes(6).toString('hex')}`;
  await createTable({ client, tableName, onWarning: () => {} });
  return tableName;
}

export interface DynaliteProcess {
  readonly endpoint: string;
  pid(): number | undefined;
  /** Kills it (SIGKILL by default) by its PID and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port (and the same LevelDB directory). */
  start(): Promise<void>;
  /** Stops it and removes its directory. Safe to call twice. */
  destroy(): Promise<void>;
}

/** dynalite as a child process on a LevelDB directory of its own (its data survives a restart). */
export async function startDynaliteProcess(): Promise<DynaliteProcess> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'idemkit-dynalite-'));
  let child: ChildProcess | undefined;

  async function start(): Promise<void> {
    const args = [CLI, '--host', '127.0.0.1', '--port', String(port), '--path', join(dir, 'db')];
    const started = spawn(process.execPath, [...args, '--createTableMs', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = started;
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => reject(new Error(`dynalite did not start: ${output}`)), 10_000);
      const onData = (data: Buffer) => {
        output += data;
        if (output.includes('listening')) {
          clearTimeout(timer);
          resolve();
        }
      };
      started.stdout?.on('data', onData);
      started.stderr?.on('data', onData);
      started.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`dynalite exited with ${code}: ${output}`));
      });
    });
  }

  async function stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.pid === undefined) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    process.kill(running.pid, signal);
    await exited;
  }

  await start();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    pid: () => child?.pid,
    stop,
    start,
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
