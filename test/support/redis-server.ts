import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/*
 * Private redis-server instances on spare loopback ports, for tests that need their own setup
 * (outages, restarts, eviction policy, Cluster). docs/guarantees.md: the shared server on 6379 is
 * never reconfigured; these are started in a temp dir and stopped by PID.
 */

const run = promisify(execFile);
const HELP = 'install redis-server and redis-cli (apt-get install redis-server); tests never skip without it';

/** A port that is free now, and whose cluster bus port (+10000) is free too. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await listenOnce(0);
    if (port < 55_000 && (await listenOnce(port + 10_000).catch(() => 0)) !== 0) return port;
  }
  throw new Error('no free port pair found on 127.0.0.1');
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Runs redis-cli against a port; rejects on a non-zero exit or after 5 s. */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], {
    timeout: 5_000,
  });
  return stdout.trim();
}

export interface PrivateRedis {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** PID of the running server, or undefined while stopped. */
  pid(): number | undefined;
  /** Stops the server (SIGKILL = crash, SIGTERM = clean shutdown) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port, with the same data directory and arguments. */
  start(): Promise<void>;
  /** Stops it and removes its data directory. Safe to call twice. */
  destroy(): Promise<void>;
}

/** Starts `redis-server` with no persistence unless `args` say otherwise. */
export async function startPrivateRedis(args: string[] = [], port?: number): Promise<PrivateRedis> {
  const p = port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), `idemkit-redis-${p}-`));
  const argv = ['--port', String(p), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'];
  argv.push('--daemonize', 'no', '--logfile', join(dir, 'redis.log'), ...args);
  let child: ChildProcess | undefined;

  async function start(): Promise<void> {
    const proc = spawn('redis-server', argv, { stdio: 'ignore' });
    child = proc;
    const failed = new Promise<never>((_, reject) => {
      proc.once('error', (error) =>
        reject(new Error(`cannot start redis-server: ${error.message}; ${HELP}`)),
      );
      proc.once('exit', (code) =>
        reject(new Error(`redis-server on ${p} exited with ${code}; see ${dir}/redis.log`)),
      );
    });
    failed.catch(() => {});
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const pong = await Promise.race([redisCli(p, 'PING').catch(() => ''), failed]);
      if (pong === 'PONG') return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`redis-server on ${p} did not answer PING within 10 s`);
  }

  async function stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }

  await start();
  return {
    port: p,
    url: `redis://127.0.0.1:${p}`,
    dir,
    pid: () => child?.pid,
    stop,
    start,
    async destroy() {
      await stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
