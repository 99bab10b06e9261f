import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./postgres-txn-child.ts', import.meta.url));

export interface TxnChild {
  child: ChildProcess;
  /** The line the child printed at its crash point, without the leading word. */
  reached: string;
  /** SIGSTOP: the process (and its open transaction) stays, but nothing more comes from it. */
  freeze(): void;
  /** SIGKILL, as a crash would; resolves once the process has exited. */
  kill9(): Promise<void>;
}

/** Starts `postgres-txn-child.ts` and waits (at most 20 s) until it reaches its crash point. */
export async function spawnTxnChild(settings: Record<string, unknown>): Promise<TxnChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    env: { ...process.env, IDEMKIT_TEST_TXN_CHILD: JSON.stringify(settings) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill9 = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  try {
    const reached = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('txn child did not reach its crash point in 20 s')),
        20_000,
      );
      child.once('exit', (code) => reject(new Error(`txn child exited early with ${code}`)));
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        if (/^(HELD|COMMITTED) /.test(line)) {
          clearTimeout(timer);
          resolve(line.slice(line.indexOf(' ') + 1));
        }
      });
    });
    return { child, reached, freeze: () => child.kill('SIGSTOP'), kill9 };
  } catch (error) {
    await kill9();
    throw error;
  }
}
