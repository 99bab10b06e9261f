import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { SutSettings } from './config.js';
import type { CrashArm } from './crash.js';

/*
 * The harness's child processes: SUTs, the downstream, client workers. Each is started with
 * node --import tsx, waited for until it prints `READY …`, and stopped by its own PID. Every
 * child goes into a registry the run empties at the end (also on failure), so nothing outlives it.
 */

const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));
const FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1';

export interface Child {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The text after `READY `. */
  readonly ready: string;
  readonly exited: Promise<void>;
  alive(): boolean;
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export class ChildRegistry {
  private readonly children = new Set<Child>();

  async spawn(
    script: string,
    env: Record<string, string>,
    options: { faketime?: string } = {},
  ): Promise<Child> {
    const extra: Record<string, string> = {};
    if (options.faketime) {
      if (!existsSync(FAKETIME_LIB))
        throw new Error('clock skew needs libfaketime: apt-get install -y faketime');
      // Only the wall clock moves: hrtime and performance.now() stay monotonic (config.ts).
      Object.assign(extra, {
        LD_PRELOAD: FAKETIME_LIB,
        FAKETIME: options.faketime,
        FAKETIME_DONT_FAKE_MONOTONIC: '1',
      });
    }
    const child = spawn(process.execPath, ['--import', 'tsx', here(script)], {
      env: { ...process.env, ...env, ...extra },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const alive = () => child.exitCode === null && child.signalCode === null;
    const entry: Child = {
      child,
      pid: child.pid ?? -1,
      ready: '',
      exited,
      alive,
      signal(signal) {
        if (alive()) child.kill(signal);
      },
      async stop(graceMs = 3_000) {
        if (!alive()) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        // A SIGSTOPped child never handles SIGTERM.
        child.kill('SIGCONT');
        await exited;
        clearTimeout(timer);
      },
    };
    this.children.add(entry);
    void exited.then(() => this.children.delete(entry));
    try {
      const ready = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${script} did not start within 20 s`)), 20_000);
        child.once('exit', (code, signal) => reject(new Error(`${script} exited early (${code ?? signal})`)));
        createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
          if (line.startsWith('READY')) {
            clearTimeout(timer);
            resolve(line.slice(6));
          }
        });
      });
      (entry as { ready: string }).ready = ready;
      return entry;
    } catch (error) {
      child.kill('SIGKILL');
      await exited;
      throw error;
    }
  }

  /** Kills every child still running (SIGKILL, by PID) and waits for the exits. */
  async killAll(): Promise<void> {
    const all = [...this.children];
    for (const entry of all) {
      entry.signal('SIGKILL');
    }
    await Promise.all(all.map((entry) => entry.exited));
  }
}

/**
 * A SUT that comes back: when it dies (kill -9, a crash point) it is started again on the same
 * port after `restartDelayMs`, unless the run is stopping. `faketime` applies to the next start.
 */
export class SutProcess {
  current: Child | undefined;
  /** Starts so far, the first included. */
  starts = 0;
  kills = 0;
  /** Starts under faketime that came up (a skew fault counts only these). */
  skewedStarts = 0;
  nextFaketime: string | undefined;
  private stopping = false;
  private restarting: Promise<void> | undefined;

  private readonly registry: ChildRegistry;
  readonly settings: SutSettings;
  private readonly arms: readonly CrashArm[];
  private readonly restartDelayMs: number;
  /** The process script: `sut.ts` (the app) or `sut-gateway.ts`. */
  readonly script: string;

  constructor(
    registry: ChildRegistry,
    settings: SutSettings,
    arms: readonly CrashArm[] = [],
    restartDelayMs = 0,
    script = 'sut.ts',
  ) {
    this.registry = registry;
    this.settings = settings;
    this.arms = arms;
    this.restartDelayMs = restartDelayMs;
    this.script = script;
  }

  get url(): string {
    return `http://127.0.0.1:${this.settings.port}`;
  }

  async start(): Promise<void> {
    const faketime = this.nextFaketime;
    this.nextFaketime = undefined;
    const child = await this.registry.spawn(
      this.script,
      { CHAOS_SUT: JSON.stringify(this.settings), CHAOS_ARMS: JSON.stringify(this.arms) },
      faketime ? { faketime } : {},
    );
    this.current = child;
    this.starts++;
    if (faketime) this.skewedStarts++;
    void child.exited.then(() => {
      if (this.stopping || this.current !== child) return;
      this.restarting = (async () => {
        if (this.restartDelayMs > 0) await new Promise((r) => setTimeout(r, this.restartDelayMs));
        if (!this.stopping) await this.start().catch(() => this.start().catch(() => {}));
      })();
    });
  }

  /**
   * kill -9 (the supervisor restarts it); resolves once the exit was seen, so the restart has
   * begun and `settled()` waits for it (a fixed short sleep missed it on a loaded machine: the
   * fault went unlogged and a skew uncounted, though the restart under faketime happened).
   */
  async kill9(): Promise<void> {
    this.kills++;
    const child = this.current;
    child?.signal('SIGKILL');
    await child?.exited;
  }

  /** Resolves once a restart in progress (if any) has finished. */
  async settled(): Promise<void> {
    while (this.restarting) {
      const pending = this.restarting;
      await pending;
      if (this.restarting === pending) this.restarting = undefined;
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.settled().catch(() => {});
    await this.current?.stop();
  }
}
