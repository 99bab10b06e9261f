import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

/** Runs examples/hono/server.ts as a reader would (`node --import tsx`), on a free port. */
async function startExample(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/hono/server.ts'], {
    env: { ...process.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the example did not start within 15 s:\n${output}`)),
      15_000,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const found = /payments API on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (found?.[1]) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the example exited with ${code}:\n${output}`));
    });
  });
  return { url, child };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

describe('examples/hono', () => {
  it('a POST with a key twice executes once; the second answer is the replay', async () => {
    const { url, child } = await startExample();
    try {
      const key = randomUUID();
      const pay = () =>
        fetch(`${url}/payments`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: 'Bearer alice',
            'idempotency-key': key,
          },
          body: JSON.stringify({ amount: 1200, currency: 'eur' }),
          signal: AbortSignal.timeout(5_000),
        });
      const first = await pay();
      const firstBody = await first.json();
      assert.equal(first.status, 201);
      assert.equal(first.headers.get('idempotent-replayed'), 'false');
      const second = await pay();
      assert.equal(second.status, 201);
      assert.equal(second.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(await second.json(), firstBody);
      assert.equal(second.headers.get('location'), `/payments/${firstBody.id}`);

      // One execution: the next payment gets the next id, and only one exists so far.
      const listed = await fetch(`${url}/payments/pay_2`, { signal: AbortSignal.timeout(5_000) });
      assert.equal(listed.status, 404);
      assert.equal(firstBody.id, 'pay_1');
    } finally {
      await stop(child);
    }
  });

  it('fetch-check.ts (the runtime-neutral check the README runs on Bun and Deno) passes on Node', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'examples/hono/fetch-check.ts'],
      {
        timeout: 30_000,
      },
    );
    assert.match(stdout, /fetch-check: ok/);
  });
});
