/**
 * The child half of the IPC that `ServerChild` (child.ts) drives: every bench child process
 * (the engine server, the gateway bench's proxy and upstream) answers CPU probes, closes what it
 * opened on `stop`, and exits when the runner goes away.
 */
import { readFileSync } from 'node:fs';
import type { FromChild, ToChild } from './variants.js';

export interface ChildSide {
  send(message: FromChild): void;
  /** Run in order on `stop` (and on a failed start), each best effort. */
  cleanups: (() => Promise<void> | void)[];
  /** Reports a failed start to the runner, then cleans up and exits 1. */
  fail(error: unknown): void;
}

/**
 * Installs the message handlers. `served`: a counter the CPU answer carries along (the upstream's
 * requests, so the runner can tell how many reached it).
 */
export function childSide(served?: () => number): ChildSide {
  const send = (message: FromChild): void => {
    process.send?.(message);
  };
  const cleanups: (() => Promise<void> | void)[] = [];

  async function stop(code: number): Promise<never> {
    for (const cleanup of cleanups) {
      try {
        await cleanup();
      } catch {
        // Best effort: the process exits anyway.
      }
    }
    process.exit(code);
  }

  process.on('message', (message: ToChild) => {
    if (message.type === 'cpu') {
      const cpu = process.cpuUsage();
      send({
        type: 'cpu',
        userUs: cpu.user,
        systemUs: cpu.system,
        ...mainThreadSched(),
        rss: process.memoryUsage.rss(),
        ...(served ? { served: served() } : {}),
      });
    } else if (message.type === 'stop') {
      void stop(0);
    }
  });
  // The runner died: do not linger.
  process.on('disconnect', () => void stop(0));

  return {
    send,
    cleanups,
    fail(error) {
      send({
        type: 'error',
        message: error instanceof Error ? (error.stack ?? error.message) : String(error),
      });
      void stop(1);
    },
  };
}

/**
 * The main thread's CPU time and the time it was runnable but not running (another thread or
 * process had the core), ns; Linux only.
 */
function mainThreadSched(): { mainNs: number; waitNs: number } {
  try {
    const [cpu, wait] = readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map(Number);
    return { mainNs: cpu ?? -1, waitNs: wait ?? -1 };
  } catch {
    return { mainNs: -1, waitNs: -1 };
  }
}
