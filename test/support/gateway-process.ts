import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { GatewayConfig } from '../../src/gateway/types.js';

const CHILD = fileURLToPath(new URL('./gateway-child.ts', import.meta.url));

export interface GatewayProcess {
  url: string;
  /** The admin listener: `/_idemkit/health`, `/_idemkit/metrics`. */
  adminUrl: string;
  child: ChildProcess;
  /** SIGKILL, as a crash would: no drain, no store close. */
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `test/support/gateway-child.ts` and waits (at most 20 s) until it listens. */
export async function spawnGateway(
  settings: Partial<GatewayConfig> & { upstream: string; sqlitePath?: string },
): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    env: { ...process.env, IDEMKIT_TEST_GATEWAY: JSON.stringify(settings) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const [url, adminUrl] = await new Promise<[string, string]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('gateway child did not start within 20 s')), 20_000);
    child.once('exit', (code) => reject(new Error(`gateway child exited with ${code}`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      if (line.startsWith('READY ')) {
        clearTimeout(timer);
        const [main = '', admin = ''] = line.slice(6).split(' ');
        resolve([main, admin]);
      }
    });
  });
  return {
    url,
    adminUrl,
    child,
    async kill9() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
