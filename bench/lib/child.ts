import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildConfig } from './server.js';
import type { FromChild, ToChild } from './variants.js';

const SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));

/** Which core the server and the load generator run on, if they can be pinned at all. */
export interface Pinning {
  server?: number;
  client?: number;
  /** The gateway bench's upstream server (with `pinCores({ upstream: true })`). */
  upstream?: number;
  note: string;
}

/**
 * With `taskset` and at least two allowed cores: the server child on the first, this process
 * (autocannon, all its threads) on the second. Otherwise nothing is pinned, and the note says so.
 * `upstream`: also a core for an upstream server child, the third when there is one; with only
 * two cores it shares the client's (the server under test keeps its core to itself).
 */
export function pinCores(options: { upstream?: boolean } = {}): Pinning {
  const probe = spawnSync('taskset', ['-cp', String(process.pid)], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0)
    return { note: 'not pinned (no taskset): client and server share cores' };
  const cores = parseCpuList(probe.stdout.split(':').pop() ?? '');
  if (cores.length < 2) return { note: `not pinned (one allowed core: ${cores.join(',')})` };
  const [server, second, third] = cores as [number, number, number | undefined];
  const upstream = options.upstream ? second : undefined;
  const client = options.upstream && third !== undefined ? third : second;
  const self = spawnSync('taskset', ['-a', '-cp', String(client), String(process.pid)], { encoding: 'utf8' });
  if (self.status !== 0) return { note: 'not pinned (taskset refused)' };
  const note =
    upstream === undefined
      ? `server on core ${server}, autocannon on core ${client} (taskset)`
      : upstream === client
        ? `proxy on core ${server}; upstream and autocannon share core ${client} (only ${cores.length} cores; taskset)`
        : `proxy on core ${server}, upstream on core ${upstream}, autocannon on core ${client} (taskset)`;
  return { server, client, ...(upstream === undefined ? {} : { upstream }), note };
}

function parseCpuList(text: string): number[] {
  const cores: number[] = [];
  for (const part of text.trim().split(',')) {
    const [from, to] = part.split('-').map(Number);
    if (from === undefined || Number.isNaN(from)) continue;
    for (let c = from; c <= (to ?? from); c++) cores.push(c);
  }
  return cores;
}

const live = new Set<ChildProcess>();
let profiles = 0;
process.once('exit', () => {
  // Only the children this process started, by their handles.
  for (const child of live) child.kill('SIGKILL');
});

export interface CpuSample {
  /** User + system CPU time of the server process, µs. */
  cpuUs: number;
  /** The system (kernel) part of cpuUs, µs. */
  systemUs: number;
  /** CPU of the server's main thread alone, µs (-1: unknown). */
  mainUs: number;
  /** Run-queue wait of the server's main thread, µs (-1: unknown). */
  waitUs: number;
  rss: number;
  /** Requests the child answered so far (-1: it does not count them). */
  served: number;
}

/** A bench child (the server under test, an upstream) in its own (pinned) process, driven over IPC. */
export class ServerChild {
  private readonly child: ChildProcess;
  private readonly inbox: FromChild[] = [];
  private waiter: (() => void) | undefined;
  private exited: string | undefined;

  private constructor(child: ChildProcess) {
    this.child = child;
    child.on('message', (message: FromChild) => {
      this.inbox.push(message);
      this.waiter?.();
    });
    child.once('exit', (code, signal) => {
      live.delete(child);
      this.exited = `server child exited (code ${code}, signal ${signal})`;
      this.waiter?.();
    });
  }

  /**
   * The engine bench's server (`server.ts`), pinned to the server core. `profile`: run under
   * `--cpu-prof`, which writes one profile per thread (tsx's loader has its own) into
   * `<dir>/<name>.<n>/` when the child exits.
   */
  static spawn(config: ChildConfig, pinning: Pinning, profile?: { dir: string; name: string }): ServerChild {
    return ServerChild.start(SERVER, config, pinning.server, profile);
  }

  /**
   * Any bench child `script` (it must speak the protocol of child-side.ts), given `config` as its
   * JSON argument, pinned to `core` when one is given.
   */
  static start(
    script: string,
    config: object,
    core: number | undefined,
    profile?: { dir: string; name: string },
    /** A command the child runs under (`valgrind …`): node becomes its argument. */
    wrapper: readonly string[] = [],
  ): ServerChild {
    const nodeArgs = ['--import', 'tsx'];
    if (profile)
      nodeArgs.push('--cpu-prof', '--cpu-prof-dir', join(profile.dir, `${profile.name}.${++profiles}`));
    nodeArgs.push(script, JSON.stringify(config));
    const node = [...wrapper, process.execPath, ...nodeArgs];
    const [command, args] =
      core === undefined ? [node[0] as string, node.slice(1)] : ['taskset', ['-c', String(core), ...node]];
    const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    live.add(child);
    return new ServerChild(child);
  }

  /** The next message of one of `types`; rejects on a child error, exit, or after `timeoutMs`. */
  async next<T extends FromChild['type']>(
    types: readonly T[],
    timeoutMs: number,
  ): Promise<Extract<FromChild, { type: T | 'unavailable' }>> {
    const deadline = Date.now() + timeoutMs;
    const wanted = (m: FromChild): boolean =>
      m.type === 'error' || m.type === 'unavailable' || (types as readonly string[]).includes(m.type);
    for (;;) {
      const index = this.inbox.findIndex(wanted);
      if (index >= 0) {
        const [message] = this.inbox.splice(index, 1) as [FromChild];
        if (message.type === 'error') throw new Error(`server child: ${message.message}`);
        return message as Extract<FromChild, { type: T | 'unavailable' }>;
      }
      if (this.exited) throw new Error(this.exited);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`server child: no ${types.join('/')} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }

  /** The child's process id (valgrind runs the program in its own process: the same id). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  private post(message: ToChild): void {
    if (this.child.connected) this.child.send(message);
  }

  async cpu(): Promise<CpuSample> {
    this.post({ type: 'cpu' });
    const m = await this.next(['cpu'], 5_000);
    if (m.type !== 'cpu') throw new Error('server child: no CPU sample');
    return {
      cpuUs: m.userUs + m.systemUs,
      systemUs: m.systemUs,
      mainUs: m.mainNs < 0 ? -1 : m.mainNs / 1_000,
      waitUs: m.waitNs < 0 ? -1 : m.waitNs / 1_000,
      rss: m.rss,
      served: m.served ?? -1,
    };
  }

  /** Asks the child to close and exit (so `--cpu-prof` can write); kills it after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.post({ type: 'stop' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await gone;
    clearTimeout(timer);
  }
}
